"""Config validation: every bad value becomes one UserError that names the field and the fix."""

import math

from cnnlab import data
from cnnlab.errors import UserError
from cnnlab.models import create_model_from_config

# Fields that define a run's trajectory: a resume must not change them.
RUN_IDENTITY = ("dataset", "model", "optimizer", "batch_size", "seed", "split_seed",
                "validation_fraction", "train_size", "label_smoothing", "num_seeds",
                "augment")


def _positive(value, name, integer=False):
  ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
  ok = ok and value > 0 and (not integer or float(value).is_integer())
  if not ok:
    kind = "a positive integer" if integer else "a positive number"
    raise UserError(f"config.{name} must be {kind}, got {value!r}; set "
                    f"--config.{name}=<{kind.split()[-1]}>")


def check_config(config, num_train=None):
  """Raise UserError on the first invalid field (call before any work is done)."""
  data.image_shape(config.dataset)  # unknown dataset -> UserError
  create_model_from_config(config.model, 10)  # unknown model / hyperparameter -> UserError
  _positive(config.optimizer.learning_rate, "optimizer.learning_rate")
  for name in ("batch_size", "eval_batch_size", "num_epochs"):
    _positive(config[name], name, integer=True)
  if not 0 <= config.early_stopping_patience:
    raise UserError("config.early_stopping_patience must be >= 0 (0 turns early stopping off)")
  if not 0.0 < config.validation_fraction < 1.0:
    raise UserError(f"config.validation_fraction must be in (0, 1), got "
                    f"{config.validation_fraction}")
  if not 0.0 <= config.label_smoothing < 1.0:
    raise UserError(f"config.label_smoothing must be in [0, 1), got {config.label_smoothing}")
  dropout = config.model.get("dropout", 0.0)
  if not 0.0 <= dropout < 1.0:
    raise UserError(f"config.model.dropout must be in [0, 1), got {dropout}")
  for name in ("train_size", "validation_size", "test_size"):
    if config[name] < 0:
      raise UserError(f"config.{name} must be >= 0 (0 = use all), got {config[name]}")
  if config.transfer_guard not in ("", "allow", "log", "disallow"):
    raise UserError(f"config.transfer_guard must be allow, log or disallow, got "
                    f"{config.transfer_guard!r}")
  if not isinstance(config.get("num_seeds", 1), int) or config.get("num_seeds", 1) < 1:
    raise UserError(f"config.num_seeds must be >= 1, got {config.get('num_seeds')}")
  if config.get("augment") is not None:
    from cnnlab.augment import check_augment_config
    check_augment_config(config.augment)
  if num_train is not None and config.batch_size > num_train:
    raise UserError(f"config.batch_size {config.batch_size} is larger than the training set "
                    f"({num_train} images); use a smaller --config.batch_size")


def check_resume_config(saved, config, workdir):
  """Refuse to resume a run whose trajectory-defining fields differ from the saved config."""
  current = config.to_dict()
  for key in RUN_IDENTITY:
    if key in saved and _plain(saved[key]) != _plain(current.get(key)):
      raise UserError(f"workdir {workdir!r} holds a run with a different {key} "
                      f"({saved[key]!r}, now {current.get(key)!r}); use the same config to "
                      "resume it, or a new --workdir")


def _plain(value):
  if isinstance(value, dict):
    return {k: _plain(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_plain(v) for v in value]
  return value
