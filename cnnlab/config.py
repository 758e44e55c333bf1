"""Config validation, all of it: every bad value becomes one UserError naming the field and fix.

`check(config)` runs once, before any work: dataset, model and its hyperparameters,
optimizer, sizes, augmentation, devices. `check_fits(config, num_train)` adds the one check
that needs the data. What a resume may change is a run's lifecycle: train/lifecycle.py.
"""

import math

from cnnlab import data
from cnnlab.augment import DEFAULT_ERASE_AREA, DEFAULT_ERASE_ASPECT
from cnnlab.errors import UserError, closest
from cnnlab.input import modes as input_modes
from cnnlab.input.transform import MAX_IMAGE_SIZE
from cnnlab.models import create_model_from_config

DTYPES = ("float32", "bfloat16")  # config.dtype: the models' computation dtype


def _positive(value, name, integer=False):
  ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
  ok = ok and value > 0 and (not integer or float(value).is_integer())
  if not ok:
    kind = "a positive integer" if integer else "a positive number"
    raise UserError(f"config.{name} must be {kind}, got {value!r}; set "
                    f"--config.{name}=<{kind.split()[-1]}>")


def _within(value, lo, hi, name, text, closed_hi=False):
  inside = lo <= value <= hi if closed_hi else lo <= value < hi
  if not inside:
    raise UserError(f"config.{name} must be {text}, got {value}")


def check(config):
  """Raise UserError on the first invalid field (call before any work is done)."""
  check_data(config)
  create_model_from_config(config.model, data.num_classes(config))  # dataset, model
  check_optimizer(config.optimizer)
  for name in ("batch_size", "eval_batch_size", "num_epochs"):
    _positive(config[name], name, integer=True)
  if not 0 <= config.early_stopping_patience:
    raise UserError("config.early_stopping_patience must be >= 0 (0 turns early stopping off)")
  if not 0.0 < config.validation_fraction < 1.0:
    raise UserError(f"config.validation_fraction must be in (0, 1), got "
                    f"{config.validation_fraction}")
  _within(config.label_smoothing, 0.0, 1.0, "label_smoothing", "in [0, 1)")
  _within(config.model.get("dropout", 0.0), 0.0, 1.0, "model.dropout", "in [0, 1)")
  check_whitening(config)
  for name in ("train_size", "validation_size", "test_size"):
    if config[name] < 0:
      raise UserError(f"config.{name} must be >= 0 (0 = use all), got {config[name]}")
  if config.transfer_guard not in ("", "allow", "log", "disallow"):
    raise UserError(f"config.transfer_guard must be allow, log or disallow, got "
                    f"{config.transfer_guard!r}")
  profile_steps = config.get("profile_steps", 0)
  if not isinstance(profile_steps, int) or profile_steps < 0:
    raise UserError(f"config.profile_steps must be an integer >= 0 (0 = no profile), got "
                    f"{profile_steps!r}")
  if not isinstance(config.get("num_seeds", 1), int) or config.get("num_seeds", 1) < 1:
    raise UserError(f"config.num_seeds must be >= 1, got {config.get('num_seeds')}")
  if config.get("augment") is not None:
    check_augment(config.augment)
  if config.get("dtype", "float32") not in DTYPES:
    raise UserError(f"config.dtype must be float32 or bfloat16, got {config.dtype!r}; set "
                    "--config.dtype=bfloat16 (mixed precision) or float32")
  input_modes.check(config)
  check_devices(config)


def check_data(config):
  """The data fields, and the dataset itself: its name resolves (a folder's files are
  checked, a TFDS builder found) and its images have one shape (data.info)."""
  size = config.get("image_size", 0)
  if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_IMAGE_SIZE:
    raise UserError(f"config.image_size must be an integer in 0..{MAX_IMAGE_SIZE} (0 = the "
                    f"dataset's own size; larger sides are nearly always a mistake, and "
                    f"resident data and dense layers grow with its square), got {size!r}")
  fraction = config.get("test_fraction", 0.2)
  if isinstance(fraction, bool) or not 0.0 < fraction < 1.0:
    raise UserError(f"config.test_fraction must be in (0, 1), got {fraction!r}")
  if not isinstance(config.get("skip_bad_images", False), bool):
    raise UserError("config.skip_bad_images must be True or False")
  data.info(config)


def check_whitening(config):
  """speedrun_cnn's whiten_eps: >= 0, and conv1's width even and within the +-pairs of its
  3x3 patches' components (whitening.py)."""
  eps = config.model.get("whiten_eps", 0.0)
  _within(eps, 0.0, math.inf, "model.whiten_eps", ">= 0 (0 = conv1 learned as usual)")
  if eps:
    from cnnlab.models import whitening
    from cnnlab.models.registry import model_fields
    first = tuple(config.model.get("widths", model_fields(config.model.name)["widths"]))[0]
    most = whitening.max_filters(data.image_shape(config)[-1])
    if first % 2 or first > most:
      raise UserError(f"config.model.whiten_eps needs conv1's width even and <= {most} (+- "
                      f"each of the {most // 2} components of its 3x3 patches), got "
                      f"{first}; set --config.model.widths=({min(first + first % 2, most)},"
                      "...) or --config.model.whiten_eps=0")


def check_optimizer(opt):
  """Name and schedule known, learning rate positive."""
  from cnnlab.train.state import OPTIMIZERS, SCHEDULES
  _positive(opt.learning_rate, "optimizer.learning_rate")
  schedule, name = opt.get("schedule", "constant"), opt.get("name", "adam")
  if schedule not in SCHEDULES:
    raise UserError(f"unknown optimizer.schedule {schedule!r}{closest(schedule, SCHEDULES)}; "
                    f"choose {_alternatives(SCHEDULES)}")
  if name not in OPTIMIZERS:
    raise UserError(f"unknown optimizer.name {name!r}{closest(name, OPTIMIZERS)}; choose "
                    f"{_alternatives(OPTIMIZERS)}")


def _alternatives(names):
  names = list(names)
  return ", ".join(names[:-1]) + f" or {names[-1]}"


def check_augment(aug):
  """Values the on-device augmentation (cnnlab.augment) can use."""
  padding = aug.get("crop_padding", 0)
  if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
    raise UserError(f"config.augment.crop_padding must be an integer >= 0, got {padding!r}")
  prob = aug.get("erase_prob", 0.0)
  if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0.0 <= prob <= 1.0:
    raise UserError(f"config.augment.erase_prob must be in [0, 1], got {prob!r}")
  lo, hi = aug.get("erase_area", DEFAULT_ERASE_AREA)
  if not 0.0 < lo <= hi <= 1.0:
    raise UserError(f"config.augment.erase_area must be (min, max) with 0 < min <= max <= 1, "
                    f"got {(lo, hi)!r}")
  aspect = aug.get("erase_aspect", DEFAULT_ERASE_ASPECT)
  if not 0.0 < aspect <= 1.0:
    raise UserError(f"config.augment.erase_aspect must be in (0, 1], got {aspect!r}")


def check_devices(config):
  """num_devices available, and every batch splits evenly over them (data parallel)."""
  import jax
  devices = jax.devices()
  n = config.get("num_devices", 0)
  if n < 0 or n > len(devices):
    raise UserError(f"config.num_devices={n} but {len(devices)} device(s) are "
                    f"available ({devices[0].platform}); use 0 (all) or 1..{len(devices)}")
  n = n or len(devices)
  for field in ("batch_size", "eval_batch_size"):
    size = config[field]
    if size % n:
      raise UserError(f"config.{field}={size} is not divisible by the {n} devices; use a "
                      f"multiple of {n} (e.g. --config.{field}={max(n, size // n * n)}) or "
                      f"--config.num_devices=1")


def check_fits(config, num_train):
  """The batch fits the training set that was loaded."""
  if config.batch_size > num_train:
    raise UserError(f"config.batch_size {config.batch_size} is larger than the training set "
                    f"({num_train} images); use a smaller --config.batch_size")
