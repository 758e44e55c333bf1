"""cnnlab.models.layers' own numbers, on tiny arrays: the pooling helpers' defaults and paths,
Conv's arguments (int strides, no bias, dtype, padding forms), named taps in forward order,
and how in_chunks groups a batch. test_fast_layers.py compares whole trunks; this is faster."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cnnlab import ops
from cnnlab.models import layers

X = np.arange(32.0, dtype=np.float32).reshape(1, 4, 4, 2) - 12  # NumPy: no JAX call at import
same = np.testing.assert_array_equal


def test_pool_helpers_default_to_2x2_valid_windows_with_the_window_as_stride():
  nhwc = lambda a: np.asarray(a)
  same(layers.max_pool(X), ops.pool(X, 2, kind="max"))
  same(layers.avg_pool(X), ops.pool(X, 2, kind="avg"))
  assert layers.max_pool(X).shape == (1, 2, 2, 2)
  same(nhwc(layers.max_pool(X, 3, 1))[0, :, :, 0], [[8, 10], [16, 18]])  # 2 * (4i + j) - 12
  same(layers.avg_pool(X, 2, 1, "SAME"), ops.pool(X, 2, stride=1, padding="same", kind="avg"))
  same(layers.max_pool(X, 3, 2, 1), ops.pool(X, 3, stride=2, padding=1, kind="max"))
  same(layers.relu_max_pool(X), jax.nn.relu(ops.pool(X, 2, kind="max")))
  same(layers.relu_max_pool(X, 4, 1), np.maximum(ops.pool(X, 4, stride=1), 0))
  same(layers.relu_max_pool(X, 2, 1), np.maximum(ops.pool(X, 2, stride=1), 0))  # 3x3, not 2x2


def test_activation_pool_applies_the_activation_then_the_chosen_pool():
  same(layers.activation_pool(X, nn.relu), layers.relu_max_pool(X))
  same(layers.activation_pool(X, nn.relu, "avg"), ops.pool(jax.nn.relu(X), 2, kind="avg"))
  same(layers.activation_pool(X, jnp.tanh, "max"), ops.pool(jnp.tanh(X), 2, kind="max"))
  same(layers.activation_pool(X, jnp.abs, "max", 4), ops.pool(jnp.abs(X), 4, kind="max"))
  same(layers.activation_pool(X, nn.relu, "max", 4), ops.pool(jax.nn.relu(X), 4, kind="max"))
  # ReLU + max runs as relu_max_pool: the ReLU sees the pooled map, a quarter of the pixels
  relus = lambda f: [e.outvars[0].aval.shape for e in jax.make_jaxpr(f)(X).eqns
                     if e.primitive.name == "custom_jvp_call"]
  assert relus(lambda y: layers.activation_pool(y, nn.relu)) == [(1, 2, 2, 2)]
  assert relus(lambda y: layers.activation_pool(y, nn.relu, "avg")) == [(1, 4, 4, 2)]


def test_conv_takes_int_strides_padding_forms_no_bias_and_a_dtype():
  x = jax.random.normal(jax.random.key(0), (2, 5, 5, 3))
  for strides, padding in ((2, "SAME"), ((1, 2), "VALID"), (1, 1), (2, ((0, 1), (1, 0)))):
    conv = layers.Conv(4, (3, 3), strides=strides, padding=padding)
    ref = nn.Conv(4, (3, 3), strides=strides, padding=padding)
    params = ref.init(jax.random.key(1), x)
    np.testing.assert_allclose(conv.apply(params, x), ref.apply(params, x), rtol=1e-5, atol=1e-5)
  params = layers.Conv(4, (3, 3), use_bias=False).init(jax.random.key(1), x)["params"]
  assert set(params) == {"kernel"} and params["kernel"].shape == (3, 3, 3, 4)
  params = layers.Conv(4, (2, 3)).init(jax.random.key(1), x)["params"]
  assert params["kernel"].shape == (2, 3, 3, 4) and params["bias"].shape == (4,)
  assert not np.any(np.asarray(params["bias"]))  # zeros, as nn.Conv
  half = layers.Conv(4, (3, 3), dtype=jnp.bfloat16)
  variables = half.init(jax.random.key(1), x)
  assert half.apply(variables, x).dtype == jnp.bfloat16
  assert variables["params"]["kernel"].dtype == jnp.float32
  # the im2col path (kh*kw*C_in <= features) gives the same numbers and gradients
  wide = layers.Conv(32, (3, 3))
  variables = wide.init(jax.random.key(2), x[..., :1])
  ref = nn.Conv(32, (3, 3))
  np.testing.assert_allclose(wide.apply(variables, x[..., :1]), ref.apply(variables, x[..., :1]),
                             rtol=1e-5, atol=1e-5)


class Two(nn.Module):
  @nn.compact
  def __call__(self, x, train=False):
    tap = layers.Taps(name="taps")
    x = tap("zconv", layers.Conv(2, (3, 3), name="zconv")(x))
    x = tap("apool", layers.max_pool(x))
    x = nn.Dropout(0.5, deterministic=not train)(x)  # layer_outputs runs inference mode
    return tap("logits", nn.Dense(3, name="logits")(x.reshape(x.shape[0], -1)))


def test_layer_outputs_are_in_forward_order_and_shapes_need_no_computation():
  x = jnp.ones((2, 4, 4, 1))
  model = Two()
  variables = model.init(jax.random.key(0), x)
  logits, outputs = layers.layer_outputs(model, variables, x)
  assert list(outputs) == ["zconv", "apool", "logits"]  # not sorted
  assert [v.shape for v in outputs.values()] == [(2, 4, 4, 2), (2, 2, 2, 2), (2, 3)]
  same(outputs["logits"], logits)
  same(logits, model.apply(variables, x))
  abstract = jax.eval_shape(model.init, jax.random.key(0), x)
  logits, outputs = layers.layer_outputs(model, abstract, jax.ShapeDtypeStruct(x.shape, x.dtype))
  assert isinstance(logits, jax.ShapeDtypeStruct) and logits.shape == (2, 3)
  assert list(outputs) == ["zconv", "apool", "logits"]


def _groups(n, **chunks):
  """The batch sizes fn sees on CPU when in_chunks splits n images (jitted: traced once)."""
  seen = []

  def fn(x):
    seen.append(x.shape[0])
    return x * 2

  x = jnp.arange(n, dtype=jnp.float32)
  out = jax.jit(lambda x: layers.in_chunks(fn, x, **chunks))(x)
  same(out, 2 * np.arange(n))
  seen.remove(n)  # the other platforms' branch, traced too: fn(x) on the whole batch
  return seen


def test_in_chunks_groups_at_least_chunk_images_and_at_most_max_chunks_groups():
  assert sorted(_groups(20)) == [4, 8, 8]  # the defaults: chunk 8, max_chunks 8
  assert _groups(8) == [8]  # one group: fn(x) unchanged
  assert sorted(_groups(100)) == [9] + [13] * 7  # ceil(100 / 8) = 13 per group
  assert sorted(_groups(10, chunk=4, max_chunks=2)) == [5, 5]
  same(layers._chunked(lambda x: x + 1, jnp.arange(5.0), 2, 8), np.arange(1.0, 6.0))


SEEN, RAN = [], []  # batch sizes the per-image function was traced for / ran on


def _per_image(x, conv, tap):
  SEEN.append(x.shape[0])
  jax.debug.callback(functools.partial(RAN.append, x.shape[0]))
  return tap("conv", jnp.tanh(conv(x)))


class Grouped(nn.Module):
  max_groups: int = 8

  @nn.compact
  def __call__(self, x, train=False):
    layer = (layers.Conv(2, (3, 3), name="conv"), layers.Taps(name="taps"))
    return layers.image_groups(_per_image, layer, x, self.max_groups).sum((1, 2, 3))


def _run(fn, *args):
  SEEN.clear()
  RAN.clear()
  out = fn(*args)
  jax.effects_barrier()
  return out, sorted(SEEN), sorted(RAN)


def test_image_groups_run_one_jitted_sub_network_per_group_with_the_same_numbers():
  x = jax.random.normal(jax.random.key(0), (20, 5, 5, 1))
  variables, seen, _ = _run(Grouped().init, jax.random.key(1), x)
  assert seen == [20]  # initialization: the whole batch, in place
  loss = lambda v, groups: Grouped(groups).apply(v, x).sum()
  whole, seen, ran = _run(jax.jit(loss, static_argnums=1), variables, 1)
  assert seen == ran == [20]
  grouped, seen, ran = _run(jax.jit(loss, static_argnums=1), variables, 8)
  assert seen == [4, 8, 20] and ran == [4, 8, 8]  # CPU runs the groups; 20: other platforms
  np.testing.assert_allclose(grouped, whole, rtol=1e-5)
  _, _, ran = _run(jax.jit(loss, static_argnums=1), variables, 2)
  assert ran == [10, 10]  # at most max_groups groups
  grads = [jax.grad(loss)(variables, g) for g in (1, 8)]
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), *grads)
  (_, state), seen, ran = _run(functools.partial(Grouped().apply, mutable=["intermediates"]),
                               variables, x)
  assert seen == ran == [20]  # recording: the taps reach the caller
  assert state["intermediates"]["taps"]["conv"][0].shape == (20, 5, 5, 2)
