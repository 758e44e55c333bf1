"""The CPU-tuned layers (layers.Conv, relu_max_pool) compute what nn.Conv and max_pool do."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnnlab import steps
from cnnlab.models import fast_conv
from cnnlab.models.layers import Conv, Taps, relu_max_pool
from cnnlab.models.textbook_cnn import GLOROT, TextbookCNN

PADDINGS = ["SAME", "VALID", ((0, 2), (1, 0)), 1]


def _close(a, b, tol=1e-5):
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


@pytest.mark.parametrize("cin", [1, 8])  # 1: im2col kernel gradient; 8: plain lax
@pytest.mark.parametrize("strides", [1, 2])
@pytest.mark.parametrize("padding", PADDINGS)
def test_conv_matches_nn_conv(cin, strides, padding):
  x = jax.random.normal(jax.random.PRNGKey(1), (4, 9, 10, cin))
  fast = Conv(5, (3, 3), strides=strides, padding=padding)
  ref = nn.Conv(5, (3, 3), strides=strides, padding=padding)
  params = ref.init(jax.random.PRNGKey(0), x)
  fast_params = fast.init(jax.random.PRNGKey(0), x)
  jax.tree.map(_close, fast_params, params)  # same names, shapes and init: checkpoints swap
  _close(fast.apply(params, x), ref.apply(params, x))
  w = jax.random.normal(jax.random.PRNGKey(2), ref.apply(params, x).shape)
  loss = lambda m: lambda p, x: jnp.sum(jnp.sin(m.apply(p, x)) * w)
  g_fast = jax.grad(loss(fast), argnums=(0, 1))(params, x)
  g_ref = jax.grad(loss(ref), argnums=(0, 1))(params, x)
  jax.tree.map(_close, g_fast, g_ref)


def test_max_pool_matches_flax_forward_and_backward():
  x = jax.random.normal(jax.random.PRNGKey(3), (3, 8, 6, 4))  # continuous: no ties
  ref = lambda x: nn.max_pool(x, (2, 2), (2, 2))
  _close(fast_conv.max_pool_2d(x), ref(x), 0)
  g = jax.random.normal(jax.random.PRNGKey(4), (3, 4, 3, 4))
  vjp = lambda f: jax.vjp(f, x)[1](g)[0]
  _close(vjp(fast_conv.max_pool_2d), vjp(ref), 0)


def test_ties_after_relu_get_the_same_gradient():
  # ReLU makes ties (windows of zeros). relu_max_pool gives such a window's gradient to its
  # first element like XLA's select_and_scatter, and ReLU's derivative is 0 there anyway,
  # so gradients reaching the conv below are identical; integer inputs force many ties.
  x = jax.random.randint(jax.random.PRNGKey(5), (2, 6, 6, 3), -3, 3).astype(jnp.float32)
  g = jax.random.normal(jax.random.PRNGKey(6), (2, 3, 3, 3))
  ref = lambda x: nn.max_pool(nn.relu(x), (2, 2), (2, 2))
  _close(relu_max_pool(x), ref(x), 0)
  _close(jax.vjp(relu_max_pool, x)[1](g)[0], jax.vjp(ref, x)[1](g)[0], 0)
  # The pool alone also matches flax on ties (first maximum in row-major window order).
  _close(jax.vjp(fast_conv.max_pool_2d, x)[1](g)[0],
         jax.vjp(lambda x: nn.max_pool(x, (2, 2), (2, 2)), x)[1](g)[0], 0)


class StraightforwardCNN(nn.Module):
  """The textbook CNN written plainly (nn.Conv, relu, flax max_pool): the numeric reference."""

  @nn.compact
  def __call__(self, x, train=False):
    Taps(name="taps")  # same variable tree as TextbookCNN
    conv = functools.partial(nn.Conv, kernel_size=(3, 3), padding="SAME", kernel_init=GLOROT)
    pool = lambda x: nn.max_pool(x, (2, 2), (2, 2))
    x = pool(nn.relu(conv(32, name="conv1")(x)))
    x = pool(nn.relu(conv(64, name="conv2")(x)))
    x = nn.relu(nn.Dense(100, kernel_init=GLOROT, name="dense1")(x.reshape(x.shape[0], -1)))
    x = nn.Dropout(0.4, deterministic=not train)(x)
    return nn.Dense(10, kernel_init=GLOROT, name="output")(x)


def test_textbook_cnn_trains_like_the_straightforward_model():
  """20 Adam steps on one fixed batch: losses agree to 1e-4 relative (float32 reordering)."""
  rng = np.random.RandomState(0)
  pixels = rng.randint(0, 256, (16, 28, 28, 1)).astype(np.uint8)
  pixels[:, :4] = 0  # Fashion-MNIST-like black border: all-zero windows, ties everywhere
  batch = {"image": jnp.asarray(pixels), "label": jnp.asarray(rng.randint(0, 10, 16), jnp.int32)}
  losses = {}
  for name, model in (("fast", TextbookCNN()), ("ref", StraightforwardCNN())):
    state = steps.create_train_state(model, optax.adam(1e-3), jax.random.PRNGKey(0), (28, 28, 1))
    step = jax.jit(steps.train_step)
    trace = []
    for _ in range(20):
      state, metrics = step(state, batch)
      trace.append(float(metrics["loss"]))
    losses[name] = trace
  assert losses["fast"][-1] < losses["fast"][0] * 0.8  # it learns the batch
  np.testing.assert_allclose(losses["fast"], losses["ref"], rtol=1e-4)


def test_chunked_trunk_equals_recorded_path():
  """Training/inference (conv trunk in groups of 8, ragged last group) = the recording path."""
  model = TextbookCNN()
  x = jax.random.uniform(jax.random.PRNGKey(7), (20, 28, 28, 1))
  variables = model.init(jax.random.PRNGKey(0), x[:1])
  plain, _ = model.apply(variables, x, mutable=["intermediates"])
  _close(model.apply(variables, x), plain, 1e-5)


def test_grouped_trunk_is_traced_once_for_all_groups():
  """8 groups of 16 images call ONE traced trunk: tracing and lowering cost one group, not 8.

  (Unrolled, the batch-128 training step took 0.5-0.6 s to trace and 210 kB of StableHLO;
  with one shared trunk 0.2-0.3 s and 97 kB, and the trained parameters are bit-identical.)
  """
  model = TextbookCNN()
  x = jnp.zeros((128, 28, 28, 1))
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), x[:1])
  jaxpr = jax.make_jaxpr(model.apply)(variables, x).jaxpr
  calls = [e for e in jaxpr.eqns if e.primitive.name in ("pjit", "jit")]
  assert len(calls) == 8
  assert len({id(e.params["jaxpr"]) for e in calls}) == 1  # the same trace, reused
  assert calls[0].outvars[0].aval.shape == (16, 7, 7, 64)  # one group through conv2 + pool
