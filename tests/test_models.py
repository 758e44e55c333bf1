"""Model architectures: parameter counts and layer output shapes (jax.eval_shape: no compute)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnlab.errors import UserError
from cnnlab.models import MODELS, create_model, layer_outputs
from cnnlab.models.layers import max_pool


def _shapes(model, input_shape=(1, 28, 28, 1)):
  x = jnp.zeros(input_shape)
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
  _, outputs = layer_outputs(model, variables, x)  # works on ShapeDtypeStructs too
  taps = {k: v.shape for k, v in outputs.items()}
  sizes = {k: sum(a.size for a in jax.tree.leaves(p)) for k, p in variables["params"].items()}
  return sizes, taps


def test_textbook_cnn_matches_the_course_summary():
  sizes, taps = _shapes(create_model("textbook_cnn"))
  assert sizes == {"conv1": 320, "conv2": 18_496, "dense1": 313_700, "output": 1_010}
  assert sum(sizes.values()) == 333_526
  assert list(taps) == ["conv1", "pool1", "conv2", "pool2", "flatten", "dense1", "dropout",
                        "output"]
  assert [s[1:] for s in taps.values()] == [(28, 28, 32), (14, 14, 32), (14, 14, 64),
                                            (7, 7, 64), (3136,), (100,), (100,), (10,)]


def test_fashion_dnn_uses_its_128_layer():
  sizes, taps = _shapes(create_model("fashion_dnn"))
  assert sizes == {"dense1": 784 * 256 + 256, "dense2": 256 * 128 + 128, "output": 1290}
  assert taps["dense2"] == (1, 128)


def test_fashion_cnn_bn_shapes():
  sizes, taps = _shapes(create_model("fashion_cnn_bn"))
  assert taps["pool2"] == (1, 6, 6, 64) and taps["flatten"] == (1, 2304)
  assert sizes["dense1"] == 2304 * 600 + 600 and sizes["bn1"] == 64


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.slow
def test_every_model_runs_one_batch(name):
  model = create_model(name)
  x = jnp.ones((2, 28, 28, 1))
  variables = model.init(jax.random.key(0), x)
  logits = model.apply(variables, x, train=False)
  assert logits.shape == (2, 10) and bool(jnp.all(jnp.isfinite(logits)))


def test_unknown_model_or_field_is_a_user_error():
  with pytest.raises(UserError, match="unknown model 'textbok_cnn'.*did you mean 'textbook_cnn'"):
    create_model("textbok_cnn")
  with pytest.raises(UserError, match="no hyperparameter 'dropuot'.*'dropout'"):
    create_model("textbook_cnn", dropuot=0.3)


@pytest.mark.slow
def test_fast_max_pool_equals_flax_max_pool_forward_and_backward():
  x = jax.random.normal(jax.random.key(1), (3, 28, 28, 8))
  ref = lambda x: nn.max_pool(x, (2, 2), (2, 2))
  np.testing.assert_array_equal(max_pool(x, 2), ref(x))
  g = jax.random.normal(jax.random.key(2), (3, 14, 14, 8))
  grad = lambda f: jax.grad(lambda x: jnp.sum(f(x) * g))(x)
  np.testing.assert_array_equal(grad(lambda x: max_pool(x, 2)), grad(ref))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_models_training_step_vmaps_over_two_seeds_on_a_mesh(name):
  """`--config.num_seeds=2` traced for every model, its state placed on a mesh as a run places
  it (traced, not compiled: ~1 s each). On jax 0.7.2 (CI's Colab row) nn.Conv's own gradients
  raised NotImplementedError here for resnet_small and inception_mini (jax-ml/jax#32157)."""
  from cnnlab import parallel
  from cnnlab.train import state as state_lib, step as step_lib
  from conftest import smoke_config
  config = smoke_config(**{"model.name": name, "num_seeds": 2, "batch_size": 8})
  config.model = {"name": name}  # the model's own defaults (smoke sets textbook fields)
  replicated = parallel.replicated(parallel.make_mesh(1))
  placed = lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=replicated)
  state = jax.tree.map(placed, state_lib.shapes(config))
  sums = jax.tree.map(placed, jax.eval_shape(lambda: step_lib.zero_sums(2)))
  data = (jax.ShapeDtypeStruct((16, 28, 28, 1), jnp.uint8, sharding=replicated),
          jax.ShapeDtypeStruct((16,), jnp.int32, sharding=replicated),
          jax.ShapeDtypeStruct((2, 16), jnp.int32, sharding=replicated))
  train_batch = step_lib.make_train_batch(8, 2, num_seeds=2)
  lowered = train_batch.lower(state, sums, *data)
  assert [a.shape for a in jax.tree.leaves(lowered.out_info[1])] == [(2,)] * 5
