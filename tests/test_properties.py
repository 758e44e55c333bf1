"""Property tests (hypothesis) of the arithmetic the course teaches: for every padding form
('valid', 'same', an int, per-dimension ints, (before, after) pairs), stride and size, the
conv and pool output sizes of shapes.py equal the real outputs of ops and of the model layers,
and ops' numbers equal lax.conv_general_dilated's / lax.reduce_window's.

Shapes are checked with jax.eval_shape (nothing is compiled); values on tiny arrays, with few
examples, so the file stays in the quick tier. Integer-valued inputs make ties in the pools.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from hypothesis import assume, given, settings, strategies as st

from cnnlab import ops, shapes
from cnnlab.models import layers

FAST = settings(max_examples=40, deadline=None, derandomize=True)
VALUES = settings(max_examples=10, deadline=None, derandomize=True)  # each compiles a little


@st.composite
def geometry(draw, pool=False):
  """(input size, window, stride, padding) per spatial dim, in one of the five padding forms."""
  size = tuple(draw(st.integers(1, 11)) for _ in range(2))
  window = tuple(draw(st.integers(1, 4)) for _ in range(2))
  stride = tuple(draw(st.integers(1, 4)) for _ in range(2))
  pad = st.integers(0, 3)
  padding = draw(st.one_of(
      st.sampled_from(["valid", "same", "VALID", "SAME"]), pad,
      st.tuples(pad, pad), st.tuples(st.tuples(pad, pad), st.tuples(pad, pad))))
  pads = ops.resolve_padding(padding, size, window, stride)
  fits = all(n + lo + hi >= f for n, (lo, hi), f in zip(size, pads, window))
  # pooling refuses a window of pure padding (tested in test_ops); draw only what it accepts
  poolable = all(max(p) < f for p, f in zip(pads, window))
  assume(fits and (poolable or not pool))
  return size, window, stride, padding


def per_dim(padding, i):
  """The padding `shapes` takes for dimension i (a str or int applies to both)."""
  return padding[i] if isinstance(padding, tuple) else padding


def expected_size(size, window, stride, padding, pool=False):
  fn = shapes.pool_output_size if pool else shapes.conv_output_size
  return tuple(fn(size[i], window[i], stride[i], per_dim(padding, i), floor=True)
               for i in range(2))


def lax_padding(padding, size, window, stride):
  """What lax takes: its own 'SAME'/'VALID' words, else explicit pairs."""
  if isinstance(padding, str):
    return padding.upper()
  return ops.resolve_padding(padding, size, window, stride)


@FAST
@given(geometry(), st.integers(1, 3), st.integers(1, 3))
def test_conv_sizes_equal_shapes_and_lax(geom, cin, cout):
  size, window, stride, padding = geom
  x = jax.ShapeDtypeStruct((2, *size, cin), jnp.float32)
  k = jax.ShapeDtypeStruct((*window, cin, cout), jnp.float32)
  ours = jax.eval_shape(lambda x, k: ops.conv2d(x, k, stride=stride, padding=padding), x, k)
  theirs = jax.eval_shape(lambda x, k: jax.lax.conv_general_dilated(
      x, k, stride, lax_padding(padding, size, window, stride),
      dimension_numbers=("NHWC", "HWIO", "NHWC")), x, k)
  assert ours.shape == theirs.shape == (2, *expected_size(size, window, stride, padding), cout)


@FAST
@given(geometry())
def test_same_is_ceil_of_size_over_stride_with_the_odd_pixel_after(geom):
  size, window, stride, _ = geom
  for n, f, s in zip(size, window, stride):
    lo, hi = ops.same_padding(n, f, s)
    out = -(-n // s)
    assert shapes.conv_output_size(n, f, s, "same") == out
    assert lo + hi == max((out - 1) * s + f - n, 0) and hi - lo in (0, 1)
    lax_lo, lax_hi = jax.lax.padtype_to_pads((n,), (f,), (s,), "SAME")[0]
    assert (lo, hi) == (lax_lo, lax_hi)


@FAST
@given(geometry(pool=True))
def test_pool_sizes_equal_shapes_and_reduce_window(geom):
  size, window, stride, padding = geom
  x = jax.ShapeDtypeStruct((1, *size, 2), jnp.float32)
  pads = ops.resolve_padding(padding, size, window, stride)
  ours = jax.eval_shape(lambda x: ops.pool(x, window, stride=stride, padding=padding), x)
  theirs = jax.eval_shape(lambda x: jax.lax.reduce_window(
      x, -jnp.inf, jax.lax.max, (1, *window, 1), (1, *stride, 1), ((0, 0), *pads, (0, 0))), x)
  assert ours.shape == theirs.shape == (1, *expected_size(size, window, stride, padding,
                                                          pool=True), 2)


@FAST
@given(geometry(), st.integers(1, 3), st.integers(1, 4))
def test_the_model_layers_give_the_sizes_shapes_computes(geom, cin, features):
  """layers.Conv (nn.Conv's padding words in upper case) and the layers' pools."""
  size, window, stride, padding = geom
  word = padding.upper() if isinstance(padding, str) else padding
  conv = layers.Conv(features, window, stride, word)
  x = jax.ShapeDtypeStruct((1, *size, cin), jnp.float32)
  variables = jax.eval_shape(conv.init, jax.random.key(0), x)
  y = jax.eval_shape(conv.apply, variables, x)
  assert y.shape == (1, *expected_size(size, window, stride, padding), features)
  pads = ops.resolve_padding(padding, size, window, stride)
  if all(max(p) < f for p, f in zip(pads, window)):
    for pool in (layers.max_pool, layers.avg_pool):
      pooled = jax.eval_shape(lambda x: pool(x, window, stride, word), x)
      assert pooled.shape == (1, *expected_size(size, window, stride, padding, pool=True), cin)
  if window[0] == window[1]:  # the course's K*F^2*D + K
    params = sum(np.prod(p.shape) for p in jax.tree.leaves(variables))
    assert params == shapes.conv_params(features, window[0], cin)


@VALUES
@given(geometry(), st.integers(0, 2**31 - 1))
def test_conv_values_equal_lax_and_flax(geom, seed):
  size, window, stride, padding = geom
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(1, *size, 2)).astype(np.float32)
  k = rng.normal(size=(*window, 2, 3)).astype(np.float32)
  y = ops.conv2d(x, k, stride=stride, padding=padding)
  ref = jax.lax.conv_general_dilated(x, k, stride, lax_padding(padding, size, window, stride),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                     precision="highest")
  np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
  word = padding.upper() if isinstance(padding, str) else padding
  flax_y = nn.Conv(3, window, stride, word, use_bias=False).apply(
      {"params": {"kernel": k}}, x)
  np.testing.assert_allclose(y, flax_y, rtol=1e-4, atol=1e-4)


@VALUES
@given(geometry(pool=True), st.sampled_from(["max", "min", "avg"]), st.integers(0, 2**31 - 1))
def test_pool_values_with_ties_and_padding_equal_reduce_window(geom, kind, seed):
  """Small integers make ties; padding never wins (max pads -inf, min +inf, avg not counted)."""
  size, window, stride, padding = geom
  x = np.random.default_rng(seed).integers(-2, 3, (2, *size, 2)).astype(np.float32)
  pads = ((0, 0), *ops.resolve_padding(padding, size, window, stride), (0, 0))
  dims, strides = (1, *window, 1), (1, *stride, 1)
  if kind == "avg":
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, dims, strides, pads)
    count = jax.lax.reduce_window(np.ones_like(x), 0.0, jax.lax.add, dims, strides, pads)
    ref = total / count
  else:
    init, op = (-np.inf, jax.lax.max) if kind == "max" else (np.inf, jax.lax.min)
    ref = jax.lax.reduce_window(x, init, op, dims, strides, pads)
  y = ops.pool(x, window, stride=stride, padding=padding, kind=kind)
  np.testing.assert_allclose(y, ref, rtol=1e-6, atol=1e-6)
