"""config.py's checks in-process (seconds, no training): each refusal's whole message, the
limits on both sides, the defaults of fields an older config lacks, did-you-mean. Written for
mutation testing (tools/mutate.py config): test_numbers.py's BAD/EDGES cover one value each.
The device checks see fake device lists (monkeypatched jax.devices), said where used.
"""

import math

import jax
import ml_collections
import pytest

from cnnlab import config as config_lib
from cnnlab.errors import UserError
from conftest import smoke_config

GONE = object()  # a field removed, as in a config written before the field existed


def cfg(**changes):
  """The smoke config with dotted fields set (any type) or removed (GONE)."""
  d = smoke_config().to_dict()
  for key, value in changes.items():
    *path, last = key.split(".")
    target = d
    for p in path:
      target = target[p]
    if value is GONE:
      del target[last]
    else:
      target[last] = value
  return ml_collections.ConfigDict(d)


def refusal(check, config):
  with pytest.raises(UserError) as err:
    check(config)
  return str(err.value)


REFUSED = [  # (field, value, the whole message)
    ("batch_size", -32, "config.batch_size must be a positive integer, got -32; set "
                        "--config.batch_size=<integer>"),
    ("batch_size", 0, "config.batch_size must be a positive integer, got 0; set "
                      "--config.batch_size=<integer>"),
    ("eval_batch_size", 2.5, "config.eval_batch_size must be a positive integer, got 2.5; set "
                             "--config.eval_batch_size=<integer>"),
    ("num_epochs", True, "config.num_epochs must be a positive integer, got True; set "
                         "--config.num_epochs=<integer>"),
    ("num_epochs", "3", "config.num_epochs must be a positive integer, got '3'; set "
                        "--config.num_epochs=<integer>"),
    ("optimizer.learning_rate", math.inf, "config.optimizer.learning_rate must be a positive "
     "number, got inf; set --config.optimizer.learning_rate=<number>"),
    ("optimizer.learning_rate", -1e-3, "config.optimizer.learning_rate must be a positive "
     "number, got -0.001; set --config.optimizer.learning_rate=<number>"),
    ("optimizer.name", "adma", "unknown optimizer.name 'adma' (did you mean 'adam'?); choose "
                               "adam, adamw or sgd"),
    ("optimizer.name", "zzz", "unknown optimizer.name 'zzz'; choose adam, adamw or sgd"),
    ("optimizer.schedule", "cosin", "unknown optimizer.schedule 'cosin' (did you mean "
                                    "'cosine'?); choose constant, cosine or onecycle"),
    ("optimizer.schedule", "onecylce", "unknown optimizer.schedule 'onecylce' (did you mean "
                                       "'onecycle'?); choose constant, cosine or onecycle"),
    ("early_stopping_patience", -1, "config.early_stopping_patience must be >= 0 (0 turns "
                                    "early stopping off)"),
    ("validation_fraction", 0.0, "config.validation_fraction must be in (0, 1), got 0.0"),
    ("validation_fraction", 1.0, "config.validation_fraction must be in (0, 1), got 1.0"),
    ("label_smoothing", -0.1, "config.label_smoothing must be in [0, 1), got -0.1"),
    ("label_smoothing", 1.0, "config.label_smoothing must be in [0, 1), got 1.0"),
    ("model.dropout", -0.5, "config.model.dropout must be in [0, 1), got -0.5"),
    ("model.dropout", 1.0, "config.model.dropout must be in [0, 1), got 1.0"),
    ("train_size", -1, "config.train_size must be >= 0 (0 = use all), got -1"),
    ("validation_size", -2, "config.validation_size must be >= 0 (0 = use all), got -2"),
    ("test_size", -3, "config.test_size must be >= 0 (0 = use all), got -3"),
    ("transfer_guard", "deny", "config.transfer_guard must be allow, log or disallow, got "
                               "'deny'"),
    ("profile_steps", -1, "config.profile_steps must be an integer >= 0 (0 = no profile), "
                          "got -1"),
    ("profile_steps", 1.5, "config.profile_steps must be an integer >= 0 (0 = no profile), "
                           "got 1.5"),
    ("num_seeds", 0, "config.num_seeds must be >= 1, got 0"),
    ("num_seeds", 2.0, "config.num_seeds must be >= 1, got 2.0"),
    ("dtype", "float16", "config.dtype must be float32 or bfloat16, got 'float16'; set "
                         "--config.dtype=bfloat16 (mixed precision) or float32"),
    ("image_size", -1, "config.image_size must be an integer in 0..512 (0 = the dataset's own "
     "size; larger sides are nearly always a mistake, and resident data and dense layers grow "
     "with its square), got -1"),
    ("image_size", 513, "config.image_size must be an integer in 0..512"),
    ("image_size", True, "config.image_size must be an integer in 0..512"),
    ("image_size", 28.0, "config.image_size must be an integer in 0..512"),
    ("test_fraction", 0.0, "config.test_fraction must be in (0, 1), got 0.0"),
    ("test_fraction", 1.0, "config.test_fraction must be in (0, 1), got 1.0"),
    ("test_fraction", True, "config.test_fraction must be in (0, 1), got True"),
    ("skip_bad_images", 1, "config.skip_bad_images must be True or False"),
    ("augment.crop_padding", -1, "config.augment.crop_padding must be an integer >= 0, got -1"),
    ("augment.crop_padding", True, "config.augment.crop_padding must be an integer >= 0, got "
                                   "True"),
    ("augment.crop_padding", 2.0, "config.augment.crop_padding must be an integer >= 0, got "
                                  "2.0"),
    ("augment.erase_prob", -0.1, "config.augment.erase_prob must be in [0, 1], got -0.1"),
    ("augment.erase_prob", 1.5, "config.augment.erase_prob must be in [0, 1], got 1.5"),
    ("augment.erase_prob", True, "config.augment.erase_prob must be in [0, 1], got True"),
    ("augment.erase_prob", "0.5", "config.augment.erase_prob must be in [0, 1], got '0.5'"),
    ("augment.erase_area", (0.0, 0.5), "config.augment.erase_area must be (min, max) with "
     "0 < min <= max <= 1, got (0.0, 0.5)"),
    ("augment.erase_area", (0.5, 0.2), "config.augment.erase_area must be (min, max) with "
     "0 < min <= max <= 1, got (0.5, 0.2)"),
    ("augment.erase_area", (0.5, 1.5), "config.augment.erase_area must be (min, max) with "
     "0 < min <= max <= 1, got (0.5, 1.5)"),
    ("augment.erase_aspect", 0.0, "config.augment.erase_aspect must be in (0, 1], got 0.0"),
    ("augment.erase_aspect", 1.5, "config.augment.erase_aspect must be in (0, 1], got 1.5"),
    ("num_devices", -1, f"config.num_devices=-1 but {jax.device_count()} device(s) are "
     f"available (cpu); use 0 (all) or 1..{jax.device_count()}"),
]


@pytest.mark.parametrize("field, value, message", REFUSED,
                         ids=[f"{f}={v!r}" for f, v, _ in REFUSED])
def test_each_check_refuses_with_its_whole_message(field, value, message):
  got = refusal(config_lib.check, cfg(**{field: value}))
  assert got.startswith(message), got


ACCEPTED = [  # the limits on the allowed side, and fields an older config lacks (GONE)
    ("batch_size", 1), ("eval_batch_size", 2.0), ("optimizer.learning_rate", 5e-324),
    ("optimizer.learning_rate", 2), ("early_stopping_patience", 0),
    ("validation_fraction", 0.999), ("label_smoothing", 0.999), ("model.dropout", 0.0),
    ("model.dropout", GONE), ("train_size", 0), ("test_size", 0), ("transfer_guard", ""),
    ("transfer_guard", "allow"), ("transfer_guard", "log"), ("profile_steps", GONE),
    ("profile_steps", 3), ("num_seeds", GONE), ("num_seeds", 2), ("augment", None),
    ("augment", GONE), ("dtype", GONE), ("dtype", "bfloat16"), ("image_size", 32),
    ("image_size", GONE), ("test_fraction", GONE), ("test_fraction", 0.001),
    ("skip_bad_images", True), ("skip_bad_images", GONE), ("optimizer.name", GONE),
    ("optimizer.name", "sgd"), ("optimizer.schedule", GONE), ("optimizer.schedule", "onecycle"),
    ("augment.crop_padding", GONE), ("augment.crop_padding", 4), ("augment.erase_prob", GONE),
    ("augment.erase_prob", 0.0), ("augment.erase_prob", 1), ("augment.erase_area", (0.02, 0.4)),
    ("augment.erase_area", (1.0, 1.0)), ("augment.erase_aspect", 1.0),
    ("augment.erase_aspect", 0.01), ("num_devices", GONE), ("num_devices", 0),
    ("num_devices", jax.device_count()),
]


@pytest.mark.parametrize("field, value", ACCEPTED,
                         ids=[f"{f}={'GONE' if v is GONE else repr(v)}" for f, v in ACCEPTED])
def test_limits_and_missing_fields_are_accepted(field, value):
  config_lib.check(cfg(**{field: value}))


def test_erase_defaults_are_checked_when_only_some_erase_fields_are_set():
  """erase_area/erase_aspect absent: augment's defaults, which pass (0.02-0.4, 0.3)."""
  config_lib.check_augment(ml_collections.ConfigDict({"erase_prob": 0.5}))
  config_lib.check_augment(ml_collections.ConfigDict({}))


def test_image_size_512_is_the_largest_accepted():
  config_lib.check_data(cfg(image_size=512))


def speedrun(**model):
  return cfg(model=dict(name="speedrun_cnn", **model))


def test_whitening_needs_an_even_first_width_within_the_patch_components():
  """Fashion-MNIST's 3x3 patches have 9 components: conv1 may hold +-each, 18 filters."""
  config_lib.check(speedrun(whiten_eps=0.01))  # default widths (16, 32)
  config_lib.check(speedrun(whiten_eps=0.01, widths=(18, 32)))
  config_lib.check(speedrun(whiten_eps=0.0, widths=(7, 32)))  # off: any width
  for eps in (-1.0, math.inf):
    assert refusal(config_lib.check, speedrun(whiten_eps=eps)) == (
        f"config.model.whiten_eps must be >= 0 (0 = conv1 learned as usual), got {eps}")
  assert refusal(config_lib.check, speedrun(whiten_eps=0.01, widths=(7, 32))) == (
      "config.model.whiten_eps needs conv1's width even and <= 18 (+- each of the 9 "
      "components of its 3x3 patches), got 7; set --config.model.widths=(8,...) or "
      "--config.model.whiten_eps=0")
  assert "got 5; set --config.model.widths=(6,...)" in refusal(
      config_lib.check, speedrun(whiten_eps=0.01, widths=(5, 32)))
  assert "got 20; set --config.model.widths=(18,...)" in refusal(
      config_lib.check, speedrun(whiten_eps=0.01, widths=(20, 32)))


class FakeDevice:  # fake: jax.devices() of a 4-device host, for the divisibility checks
  platform = "tpu"


def test_batches_must_split_over_the_devices(monkeypatch):
  monkeypatch.setattr(jax, "devices", lambda: [FakeDevice()] * 4)
  check = config_lib.check_devices
  check(cfg(batch_size=32, eval_batch_size=256, num_devices=0))
  check(cfg(batch_size=30, eval_batch_size=6, num_devices=2))
  check(cfg(batch_size=4, eval_batch_size=4, num_devices=4))
  check(cfg(batch_size=32, eval_batch_size=8, num_devices=GONE))
  assert refusal(check, cfg(batch_size=30, num_devices=0)) == (
      "config.batch_size=30 is not divisible by the 4 devices; use a multiple of 4 (e.g. "
      "--config.batch_size=28) or --config.num_devices=1")
  assert refusal(check, cfg(batch_size=2, num_devices=GONE)) == (
      "config.batch_size=2 is not divisible by the 4 devices; use a multiple of 4 (e.g. "
      "--config.batch_size=4) or --config.num_devices=1")
  assert refusal(check, cfg(eval_batch_size=7, num_devices=2)) == (
      "config.eval_batch_size=7 is not divisible by the 2 devices; use a multiple of 2 (e.g. "
      "--config.eval_batch_size=6) or --config.num_devices=1")
  assert refusal(check, cfg(num_devices=5)) == (
      "config.num_devices=5 but 4 device(s) are available (tpu); use 0 (all) or 1..4")


def test_the_batch_must_fit_the_training_set():
  config_lib.check_fits(cfg(batch_size=32), 32)
  assert refusal(lambda c: config_lib.check_fits(c, 31), cfg(batch_size=32)) == (
      "config.batch_size 32 is larger than the training set (31 images); use a smaller "
      "--config.batch_size")

