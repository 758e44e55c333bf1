"""The model zoo and on-device augmentation: shapes by jax.eval_shape, one real step each."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from cnnlab import augment as aug
from cnnlab.inspect import layers
from cnnlab.train import step as step_lib
from cnnlab.train import state as state_lib
from cnnlab.models import create_model, layer_outputs
from conftest import smoke_config

ZOO = ("lenet5", "lenet5_relu", "vgg_small", "resnet_small", "inception_mini", "speedrun_cnn")
INPUTS = ((28, 28, 1), (32, 32, 3))
MNIST_DIR = "/usr/share/datasets/mnist"  # the IDX files, where a package or a person put them
# Parameters on 28x28x1 (LeNet-5 by hand below; the others pinned from their definitions).
PARAMS = {"lenet5": 61_706, "lenet5_relu": 61_706, "vgg_small": 288_170,
          "resnet_small": 307_690, "inception_mini": 32_842,
          # conv1 3*3*16+16, conv2 3*3*16*32 (no bias), BatchNorm 2*32, dense1 7*7*32*512 (no
          # bias), BatchNorm 2*512, output 512*10+10
          "speedrun_cnn": 160 + 4_608 + 64 + 802_816 + 1_024 + 5_130}


def _abstract(model, input_shape, n=2):
  x = jax.ShapeDtypeStruct((n, *input_shape), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
  return variables, layer_outputs(model, variables, x)


def test_lenet5_has_the_published_61706_parameters():
  # C1 6*(5*5*1)+6 = 156; C3 (full connectivity) 16*(5*5*6)+16 = 2,416;
  # C5 120*(5*5*16)+120 = 48,120; F6 84*120+84 = 10,164; output 10*84+10 = 850.
  # Total 61,706 (the paper's sparse C3 and trainable pools give 60,840 instead).
  expected = {"c1": 156, "c3": 2_416, "c5": 48_120, "f6": 10_164, "output": 850}
  assert sum(expected.values()) == 61_706
  for input_shape in ((28, 28, 1), (32, 32, 1)):
    variables, (logits, taps) = _abstract(create_model("lenet5"), input_shape)
    sizes = {k: sum(a.size for a in jax.tree.leaves(v)) for k, v in variables["params"].items()}
    assert sizes == expected
    assert taps["c1"].shape == (2, 28, 28, 6) and taps["s2"].shape == (2, 14, 14, 6)
    assert taps["c3"].shape == (2, 10, 10, 16) and taps["s4"].shape == (2, 5, 5, 16)
    assert taps["c5"].shape == (2, 1, 1, 120) and logits.shape == (2, 10)
    assert ("pad" in taps) == (input_shape[0] == 28)


@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_builds_and_its_taps_are_consistent(name):
  model = create_model(name)
  rows_by_input = []
  for input_shape in INPUTS:
    variables, (logits, taps) = _abstract(model, input_shape)
    params = variables["params"]
    total = sum(a.size for a in jax.tree.leaves(params))
    if input_shape == (28, 28, 1):
      assert total == PARAMS[name]
    # Every parameter is in some summary row, and the rows add up to the model's total.
    summary = layers.summarize(name, input_shape)
    assert summary["trainable"] == total == sum(r["params"] for r in summary["rows"])
    # Each layer with parameters has a tap of its own name, or is a BatchNorm folded into
    # the row of the layer before it.
    for module, p in params.items():
      assert module in taps or set(p) == {"scale", "bias"}, module
    assert all(t.shape[0] == 2 for t in taps.values())
    assert list(taps)[-1] == "output" and taps["output"].shape == logits.shape == (2, 10)
    rows_by_input.append(list(taps))
  assert rows_by_input[0] == rows_by_input[1] or name.startswith("lenet5")  # lenet5: "pad"


@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_takes_num_classes(name):
  _, (logits, _) = _abstract(create_model(name, num_classes=7), (28, 28, 1))
  assert logits.shape == (2, 7)


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("input_shape", INPUTS)
@pytest.mark.slow
def test_zoo_model_trains_one_step(name, input_shape):
  model = create_model(name)
  opt = ml_collections.ConfigDict({"name": "sgd", "learning_rate": 0.01, "momentum": 0.9})
  state = state_lib.create_train_state(model, state_lib.make_optimizer(opt, 10), jax.random.key(0),
                                   input_shape)
  rng = np.random.default_rng(0)
  batch = {"image": jnp.asarray(rng.integers(0, 256, (4, *input_shape), dtype=np.uint8)),
           "label": jnp.asarray(rng.integers(0, 10, 4), jnp.int32)}
  new_state, metrics = jax.jit(step_lib.train_step, static_argnums=2)(state, batch, 0.1)
  assert np.isfinite(float(metrics["loss"])) and int(new_state.step) == 1
  moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), new_state.params, state.params)
  assert any(jax.tree.leaves(moved))


# ------------------------------------------------------------------------------ augment

def _images(n=16, h=28, w=28, c=1, dtype=np.uint8, seed=0):
  x = np.random.default_rng(seed).integers(1, 256, (n, h, w, c))
  return jnp.asarray(x.astype(dtype))


ALL_ON = {"crop_padding": 2, "flip": True, "erase_prob": 0.5}


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_augment_keeps_shape_and_dtype(dtype):
  x = _images(c=3, dtype=dtype)
  y = jax.jit(lambda r, x: aug.augment(r, x, ALL_ON))(jax.random.key(0), x)
  assert y.shape == x.shape and y.dtype == x.dtype


def test_augment_off_is_the_identity():
  x = _images()
  off = ml_collections.ConfigDict({"crop_padding": 0, "flip": False, "erase_prob": 0.0})
  for config in (off, {}, None):
    np.testing.assert_array_equal(aug.augment(jax.random.key(3), x, config), x)


def test_flip_gives_exact_mirror_images_of_some_and_leaves_the_rest():
  x = _images(n=64)
  y = np.asarray(aug.augment(jax.random.key(1), x, {"flip": True}))
  x = np.asarray(x)
  same = np.all(y == x, axis=(1, 2, 3))
  mirrored = np.all(y == x[:, :, ::-1], axis=(1, 2, 3))
  assert np.all(same | mirrored) and same.any() and mirrored.any()


def test_crop_is_a_zero_filled_shift_of_at_most_the_padding():
  p, x = 2, np.asarray(_images(n=8))
  y = np.asarray(aug.augment(jax.random.key(2), jnp.asarray(x), {"crop_padding": p}))
  padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
  shifts = set()
  for i in range(len(x)):
    found = [(dy, dx) for dy in range(2 * p + 1) for dx in range(2 * p + 1)
             if np.array_equal(padded[i, dy:dy + 28, dx:dx + 28], y[i])]
    assert found, f"image {i} is not a crop of its padded image"
    shifts.add(found[0])
  assert len(shifts) > 1  # per image, not one shift for the batch


def test_erase_zeroes_one_rectangle_per_image_and_nothing_else():
  x = jnp.full((16, 28, 28, 1), 255, jnp.uint8)
  y = np.asarray(aug.augment(jax.random.key(4), x, {"erase_prob": 1.0}))[..., 0]
  for img in y:
    rows, cols = np.nonzero(img == 0)
    assert rows.size > 0
    box = img[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    assert np.all(box == 0) and np.sum(img == 0) == box.size  # exactly a rectangle
  none = aug.augment(jax.random.key(4), x, {"erase_prob": 1e-9})
  np.testing.assert_array_equal(none, x)


def test_augment_is_deterministic_given_rng_and_varies_across_rngs():
  x = _images()
  run = jax.jit(lambda r: aug.augment(r, x, ALL_ON))
  a, b, c = run(jax.random.key(7)), run(jax.random.key(7)), run(jax.random.key(8))
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  np.testing.assert_array_equal(aug.augment(jax.random.key(7), x, ALL_ON), a)  # jit == eager


def test_bad_augment_values_are_user_errors():
  """The config check (cnnlab.config, run once before training) refuses what augment can't use."""
  from cnnlab import config as config_lib
  from cnnlab.errors import UserError
  for bad in ({"crop_padding": -1}, {"crop_padding": 1.5}, {"erase_prob": 2.0},
              {"erase_prob": 0.5, "erase_area": (0.5, 0.1)}):
    with pytest.raises(UserError, match="config.augment"):
      config_lib.check_augment(bad)
    with pytest.raises(UserError, match="config.augment"):
      config_lib.check(smoke_config(augment=ml_collections.ConfigDict(bad)))


@pytest.mark.slow
def test_flip_tta_of_a_mirror_symmetric_input_equals_plain_logits():
  model = create_model("textbook_cnn")
  x = jax.random.uniform(jax.random.key(5), (4, 28, 28, 1))
  variables = model.init(jax.random.key(0), x)
  logits_fn = lambda images: model.apply(variables, images, train=False)
  symmetric = 0.5 * (x + x[:, :, ::-1])
  np.testing.assert_allclose(aug.flip_tta_logits(logits_fn, symmetric), logits_fn(symmetric),
                             rtol=1e-6, atol=1e-6)
  expected = 0.5 * (logits_fn(x) + logits_fn(x[:, :, ::-1]))
  np.testing.assert_allclose(aug.flip_tta_logits(logits_fn, x), expected, rtol=1e-6)


@pytest.mark.parametrize("name", ["best", "fast", "lenet5", "inception_mini", "resnet_small"])
def test_zoo_configs_are_valid_and_keep_validation(name):
  import importlib
  from cnnlab import config as config_lib
  config = importlib.import_module(f"experiments.{name}").get_config()
  config_lib.check(config)
  assert 0 < config.validation_fraction < 1 and config.early_stopping_patience == 0
  assert set(config.augment) == {"crop_padding", "flip", "erase_prob"}
  assert not (config.dataset == "mnist" and config.augment.flip)  # digits are not symmetric


@pytest.mark.slow  # 10 epochs, ~6 min on a 2-core CPU where MNIST exists
def test_lenet5_reaches_099_on_mnist(tmp_path):
  """The issue's LeNet-5 target: >= 0.99 test accuracy on MNIST with experiments/lenet5.py.

  Reads MNIST's IDX files from MNIST_DIR only: no network probe (TFDS would need the
  internet). Skipped, with the reason, where those files are absent, as on the machines that
  built cnnlab: the number is still unmeasured.
  """
  import importlib
  from cnnlab.input import registered
  from cnnlab.train import train_and_evaluate
  if not (registered.has_idx_files(MNIST_DIR, "train")
          and registered.has_idx_files(MNIST_DIR, "test")):
    pytest.skip(f"MNIST IDX files not in {MNIST_DIR}")
  config = importlib.import_module("experiments.lenet5").get_config()
  assert config.dataset == "mnist"
  config.data_dir = MNIST_DIR
  results = train_and_evaluate(config, str(tmp_path), log=lambda *a: None)
  assert results["test_accuracy"] >= 0.99
