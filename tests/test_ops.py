"""cnnlab.ops: the course's worked examples (SPEC section 1) as golden tests, plus properties."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnlab import ops, shapes
from cnnlab.errors import UserError

IMAGE3 = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
ONES2 = [[1, 1], [1, 1]]
SAME1 = [[12, 16, 9], [24, 28, 15], [15, 17, 9]]
TOL = dict(atol=1e-5, rtol=1e-5)


def close(actual, expected):
  np.testing.assert_allclose(np.asarray(actual), np.asarray(expected, np.float32), **TOL)


# ----------------------------------------------------------------------------- golden examples

def test_example1_valid_and_same_on_3x3():
  x = np.array(IMAGE3, np.float32).reshape(1, 3, 3, 1)
  k = np.ones((2, 2, 1, 1), np.float32)
  valid, same = ops.conv2d(x, k), ops.conv2d(x, k, padding="same")
  assert valid.shape == (1, 2, 2, 1) and same.shape == (1, 3, 3, 1)
  close(valid[0, ..., 0], [[12, 16], [24, 28]])
  close(same[0, ..., 0], SAME1)
  # the plain 2D list form returns 2D
  close(ops.conv2d(IMAGE3, ONES2), [[12, 16], [24, 28]])
  close(ops.conv2d(IMAGE3, ONES2, padding="SAME"), SAME1)


def test_example2_three_filters_give_three_feature_maps():
  x = np.array(IMAGE3, np.float32).reshape(1, 3, 3, 1)
  k = np.ones((2, 2, 1, 3), np.float32) * np.array([1, 10, -1], np.float32)
  y = ops.conv2d(x, k, padding="same")
  assert y.shape == (1, 3, 3, 3)
  for i, scale in enumerate([1, 10, -1]):
    close(y[0, :, :, i], np.array(SAME1) * scale)


def test_example3_5x5_two_kernels():
  x = np.array([[2, 1, 2, 0, 1], [1, 3, 2, 2, 3], [1, 1, 3, 3, 0], [2, 2, 0, 1, 1],
                [0, 0, 3, 1, 2]], np.float32).reshape(1, 5, 5, 1)
  k = np.stack([[[2, 3], [0, 1]], [[0.1, 0.2], [0.3, 0.4]]], -1)[:, :, None, :]
  assert k.shape == (2, 2, 1, 2)
  y = ops.conv2d(x, k)
  assert y.shape == (1, 4, 4, 2)
  close(y[0, ..., 0], [[10, 10, 6, 6], [12, 15, 13, 13], [7, 11, 16, 7], [10, 7, 4, 7]])
  close(y[0, ..., 1], [[1.9, 2.2, 1.6, 2.0], [1.4, 2.2, 2.7, 1.7], [1.7, 1.3, 1.3, 1.0],
                       [0.6, 1.4, 1.5, 1.4]])


def test_example4_max_pool_valid_and_same():
  x = np.array([[4, 3], [2, 1]], np.float32).reshape(1, 2, 2, 1)
  valid = ops.max_pool(x, 2, stride=1)
  assert valid.shape == (1, 1, 1, 1)
  close(valid, [[[[4]]]])
  close(ops.max_pool(x, 2, stride=1, padding="same")[0, ..., 0], [[4, 3], [2, 1]])


def test_example5_max_pool_stride2():
  x = [[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]]
  close(ops.max_pool(x, 2), [[6, 8], [3, 4]])
  close(ops.pool(x, 2, stride=2, kind="max"), [[6, 8], [3, 4]])


def test_example6_max_avg_min_of_pooling_regions():
  regions = [[3, -1, -3, 1], [12, -1, 0, 1], [2, -3, 3, -2], [0, 1, 4, -2]]
  x = np.zeros((4, 4), np.float32)
  for (i, j), r in zip(itertools.product(range(2), range(2)), regions):
    x[2 * i:2 * i + 2, 2 * j:2 * j + 2] = np.reshape(r, (2, 2))
  close(ops.max_pool(x, 2), [[3, 12], [3, 4]])
  close(ops.avg_pool(x, 2), [[0, 3], [0, 0.75]])  # the slide's 1 is an arithmetic slip
  close(ops.min_pool(x, 2), [[-3, -1], [-3, -2]])


def test_example7_mnist_stride2_same_shapes():
  x = jnp.zeros((1, 28, 28, 1))
  y = ops.conv2d(x, jnp.ones((3, 3, 1, 5)), stride=2, padding="same")
  assert y.shape == (1, 14, 14, 5)
  assert ops.max_pool(y, 2, stride=2, padding="same").shape == (1, 7, 7, 5)


def test_example8_cs231n_demo_5x5x3_k2_f3_s2_p1():
  rng = np.random.default_rng(8)
  x = rng.integers(0, 3, (5, 5, 3)).astype(np.float32)
  k = rng.integers(-1, 2, (3, 3, 3, 2)).astype(np.float32)
  b = np.array([1, 0], np.float32)
  y = ops.conv2d(x, k, stride=2, padding=1, bias=b)
  assert y.shape == (3, 3, 2)
  assert shapes.conv_output_size(5, 3, stride=2, padding=1) == 3  # (5-3+2)/2+1
  close(y, numpy_conv(x[None], k, 2, ((1, 1), (1, 1)))[0] + b)


def test_example9_1d_moving_average():
  close(ops.conv1d([1, 1, 1, 1, 1], [0.25, 0.25, 0.25]), [0.75, 0.75, 0.75])


def test_example10_pixel_participation_is_the_conv_gradient():
  """d(sum of outputs)/d(pixel) of an all-ones filter = how often the pixel is used."""
  for pad, corner, edge, centre in [(0, 1, 2, 4), (1, 4, 6, 9)]:
    grad = jax.grad(lambda x: ops.conv2d(x, jnp.ones((3, 3)), padding=pad).sum())(
        jnp.zeros((4, 4)))
    assert (grad[0, 0], grad[0, 1], grad[1, 1]) == (corner, edge, centre)
    np.testing.assert_array_equal(grad, shapes.pixel_usage(4, 3, padding=pad))


def test_example11_nchw_same_conv_then_pool():
  x = jnp.ones((1, 1, 28, 28))
  y = ops.conv2d(x, jnp.ones((4, 1, 3, 3)), padding="same", layout="NCHW", kernel_layout="OIHW")
  assert y.shape == (1, 4, 28, 28)
  assert ops.max_pool(y, 2, layout="NCHW").shape == (1, 4, 14, 14)


# ----------------------------------------------------------------------------- other behaviour

def test_edge_masks_respond_to_their_edges():
  step = np.zeros((6, 6), np.float32)
  step[:, 3:] = 1  # a vertical edge between columns 2 and 3
  v = np.asarray(ops.conv2d(step, ops.VERTICAL_EDGE, padding="same"))
  h = np.asarray(ops.conv2d(step, ops.HORIZONTAL_EDGE, padding="same"))
  assert np.all(v[:, 3] == 1) and np.count_nonzero(v) == 6
  assert np.count_nonzero(h[1:]) == 0
  with pytest.raises(ValueError):
    ops.VERTICAL_EDGE[0, 0] = 5


def test_one_by_one_conv_mixes_channels():
  x = np.arange(2 * 3 * 3, dtype=np.float32).reshape(1, 2, 3, 3).transpose(0, 2, 3, 1)
  w = np.array([[1.0], [-1.0]], np.float32).reshape(1, 1, 2, 1)
  close(ops.conv2d(x, w), x[..., :1] - x[..., 1:])


def test_nchw_matches_nhwc_and_float32_default():
  rng = np.random.default_rng(0)
  x, k = rng.normal(size=(2, 7, 6, 3)), rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
  a = ops.conv2d(x.astype(np.float32), k, stride=2, padding="same")
  b = ops.conv2d(x.transpose(0, 3, 1, 2).astype(np.float32), k, stride=2, padding="same",
                 layout="NCHW")
  close(b.transpose(0, 2, 3, 1), a)
  assert ops.conv2d(IMAGE3, ONES2).dtype == jnp.float32


def test_conv3d_matches_numpy_loop():
  rng = np.random.default_rng(3)
  x, k = rng.normal(size=(1, 4, 5, 6, 2)), rng.normal(size=(2, 3, 2, 2, 3))
  y = ops.conv3d(x.astype(np.float32), k.astype(np.float32), stride=(1, 2, 1), padding=1)
  ref = numpy_conv(x, k, (1, 2, 1), ((1, 1),) * 3)
  np.testing.assert_allclose(np.asarray(y), ref, atol=1e-4)


def test_jit_and_bias_one_per_filter():
  f = jax.jit(lambda x, k, b: ops.conv2d(x, k, padding="same", bias=b))
  y = f(jnp.ones((1, 3, 3, 1)), jnp.ones((2, 2, 1, 3)), jnp.array([0.0, 1.0, 2.0]))
  close(y[0, 2, 2], [1, 2, 3])
  with pytest.raises(UserError, match="one bias per filter"):
    ops.conv2d(IMAGE3, np.ones((2, 2, 1, 3)), bias=[1, 2])


# ----------------------------------------------------------------------------- properties

def numpy_conv(x, k, stride, pads):
  """Straightforward sliding window: (N, *spatial, C) x (*F, C, K), zero padding."""
  nd = k.ndim - 2
  stride = (stride,) * nd if isinstance(stride, int) else stride
  x = np.pad(x, ((0, 0),) + tuple(pads) + ((0, 0),))
  out = [(x.shape[1 + i] - k.shape[i]) // stride[i] + 1 for i in range(nd)]
  y = np.zeros((x.shape[0], *out, k.shape[-1]))
  for pos in itertools.product(*map(range, out)):
    sl = tuple(slice(p * s, p * s + f) for p, s, f in zip(pos, stride, k.shape))
    y[(slice(None),) + pos] = np.tensordot(x[(slice(None),) + sl], k, axes=nd + 1)
  return y


def numpy_pool(x, window, stride, pads, kind):
  x = np.pad(x.astype(np.float64), ((0, 0),) + tuple(pads) + ((0, 0),), constant_values=np.nan)
  out = [(x.shape[1 + i] - window[i]) // stride[i] + 1 for i in range(2)]
  reduce = {"max": np.nanmax, "min": np.nanmin, "avg": np.nanmean}[kind]
  y = np.zeros((x.shape[0], *out, x.shape[-1]))
  for i, j in itertools.product(*map(range, out)):
    win = x[:, i * stride[0]:i * stride[0] + window[0], j * stride[1]:j * stride[1] + window[1]]
    y[:, i, j] = reduce(win, axis=(1, 2))
  return y


def random_cases(n, seed, pooling=None):
  """n random (rng, input size, filter, stride, padding), all four padding forms.

  Filters (1-3) never exceed inputs (3-9), so every case is a valid convolution. With
  pooling=True only cases pooling accepts are drawn, with pooling=False only those it refuses
  (a window of pure padding), so every generated case is compared or refused: none skipped.
  """
  rng = np.random.default_rng(seed)
  made = 0
  while made < n:
    size = tuple(int(v) for v in rng.integers(3, 10, 2))
    f = tuple(int(v) for v in rng.integers(1, 4, 2))
    stride = tuple(int(v) for v in rng.integers(1, 4, 2))
    padding = ["valid", "same", int(rng.integers(0, 3)),
               ((int(rng.integers(0, 3)), int(rng.integers(0, 3))), (0, 1))][rng.integers(4)]
    if pooling is None or pooling == _poolable(size, f, stride, padding):
      made += 1
      yield rng, size, f, stride, padding


def _poolable(size, f, stride, padding):
  """False when some window would hold only padding (pooling refuses that)."""
  pads = ops.resolve_padding(padding, size, f, stride)
  return all(max(p) < w for p, w in zip(pads, f))


def test_conv2d_agrees_with_lax_and_numpy_loop():
  for rng, size, f, stride, padding in random_cases(20, seed=1):
    c, k = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    x = rng.normal(size=(2, *size, c)).astype(np.float32)
    kern = rng.normal(size=(*f, c, k)).astype(np.float32)
    pads = ops.resolve_padding(padding, size, f, stride)
    y = np.asarray(ops.conv2d(x, kern, stride=stride, padding=padding))
    np.testing.assert_allclose(y, numpy_conv(x, kern, stride, pads), atol=1e-4)
    lax_pad = padding.upper() if isinstance(padding, str) else pads
    ref = jax.lax.conv_general_dilated(x, kern, stride, lax_pad, precision="highest",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(y, ref, atol=1e-4)


@pytest.mark.slow
def test_conv2d_gradient_matches_finite_differences():
  """Central differences are exact for a quadratic loss, so only rounding remains."""
  for rng, size, f, stride, padding in random_cases(4, seed=2):
    x = jnp.asarray(rng.normal(size=(1, *size, 2)), jnp.float32)
    kern = jnp.asarray(rng.normal(size=(*f, 2, 3)), jnp.float32)
    loss = jax.jit(lambda x, kern: jnp.sum(ops.conv2d(x, kern, stride=stride,
                                                      padding=padding) ** 2))
    grads = jax.jit(jax.grad(loss, argnums=(0, 1)))(x, kern)
    eps, args = 1e-2, (x, kern)
    for i, grad in enumerate(grads):
      v = jnp.asarray(rng.normal(size=grad.shape), jnp.float32)
      shifted = lambda sign: [a + sign * eps * v if j == i else a for j, a in enumerate(args)]
      fd = (loss(*shifted(1)) - loss(*shifted(-1))) / (2 * eps)
      np.testing.assert_allclose(fd, jnp.vdot(grad, v), rtol=2e-3, atol=1e-2)


@pytest.mark.slow
def test_pool_agrees_with_numpy_loop():
  for (rng, size, f, stride, padding), kind in zip(random_cases(16, seed=4, pooling=True),
                                                  itertools.cycle(ops.POOL_KINDS)):
    pads = ops.resolve_padding(padding, size, f, stride)
    x = rng.normal(size=(2, *size, 3)).astype(np.float32)
    y = ops.pool(x, f, stride=stride, padding=padding, kind=kind)
    np.testing.assert_allclose(y, numpy_pool(x, f, stride, pads, kind), atol=1e-5)


@pytest.mark.parametrize("kind", ["max", "min", "avg"])
@pytest.mark.parametrize("window, stride, pads", [
    ((2, 2), (2, 2), ((0, 0), (0, 0))),  # tiled: reshape + reduce
    ((2, 2), (2, 2), ((0, 1), (1, 0))),  # tiled once padded
    ((2, 3), (2, 3), ((0, 0), (0, 0))),  # tiled after cropping the rows VALID never reads
    ((3, 3), (1, 1), ((1, 1), (1, 1))),  # inception's SAME 3x3: shifted views
    ((3, 2), (2, 1), ((0, 0), (0, 0))),  # overlapping windows
])
@pytest.mark.slow
def test_pool_nhwc_paths_equal_reduce_window(kind, window, stride, pads):
  """Every fast path gives reduce_window's numbers; max/min gradients reach only maxima."""
  x = jax.random.normal(jax.random.key(3), (2, 7, 8, 3))
  full = ((0, 0),) + pads + ((0, 0),)
  dims, st = (1, *window, 1), (1, *stride, 1)
  if kind == "avg":
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, dims, st, full)
    ones = jnp.ones((1, 7, 8, 1))
    ref = total / jax.lax.reduce_window(ones, 0.0, jax.lax.add, dims, st, full)
  else:
    init, op = (-jnp.inf, jax.lax.max) if kind == "max" else (jnp.inf, jax.lax.min)
    ref = jax.lax.reduce_window(x, init, op, dims, st, full)
  y = ops.pool_nhwc(x, window, stride, kind, pads)
  np.testing.assert_array_equal(y, ref)
  if kind != "avg":  # continuous input, no ties: the gradient of every path is reduce_window's
    g = jax.random.normal(jax.random.key(4), y.shape)
    grad = lambda f: jax.vjp(f, x)[1](g)[0]
    np.testing.assert_allclose(grad(lambda x: ops.pool_nhwc(x, window, stride, kind, pads)),
                               grad(lambda x: jax.lax.reduce_window(x, init, op, dims, st, full)),
                               rtol=1e-6, atol=1e-6)


def test_output_shapes_equal_the_shapes_formulas():
  for rng, size, f, stride, padding in random_cases(40, seed=5):
    x = jax.ShapeDtypeStruct((1, *size, 2), jnp.float32)
    kern = jax.ShapeDtypeStruct((*f, 2, 4), jnp.float32)
    out = jax.eval_shape(lambda x, k: ops.conv2d(x, k, stride=stride, padding=padding), x, kern)
    per_dim = padding if isinstance(padding, tuple) else (padding, padding)
    expect = [shapes.conv_output_size(size[i], f[i], stride[i], per_dim[i], floor=True)
              for i in range(2)]
    assert out.shape == (1, *expect, 4)
  for rng, size, f, stride, padding in random_cases(40, seed=5, pooling=True):
    x = jax.ShapeDtypeStruct((1, *size, 2), jnp.float32)
    per_dim = padding if isinstance(padding, tuple) else (padding, padding)
    pooled = jax.eval_shape(lambda x: ops.pool(x, f, stride=stride, padding=padding), x)
    assert pooled.shape == (1, *[shapes.pool_output_size(size[i], f[i], stride[i], per_dim[i],
                                                         floor=True) for i in range(2)], 2)


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("call, message", [
    (lambda: ops.conv2d(IMAGE3, np.ones((4, 4))), "larger than the padded input 3x3"),
    (lambda: ops.conv2d(np.ones((5, 5, 3)), np.ones((3, 3, 1, 2))), "3 channel.* expects 1"),
    (lambda: ops.conv2d(IMAGE3, ONES2, stride=0), "stride must be at least 1"),
    (lambda: ops.conv2d(IMAGE3, ONES2, padding="full"), "unknown padding 'full'"),
    (lambda: ops.conv2d([[1, 2], [3]], ONES2), "ragged"),
    (lambda: ops.conv2d(IMAGE3, [[1, 1], [1]]), "kernel is a ragged"),
    (lambda: ops.conv2d([["a", "b"]], ONES2), "numbers"),
    (lambda: ops.conv2d(IMAGE3, ONES2, padding=-1), "negative"),
    (lambda: ops.conv2d(IMAGE3, ONES2, layout="CHWN"), "unknown layout"),
    (lambda: ops.conv2d(np.ones((1, 1, 3, 3, 1)), ONES2), "rank"),
    (lambda: ops.conv2d(IMAGE3, np.ones((2, 2, 1))), "kernel has shape"),
    (lambda: ops.max_pool(IMAGE3, 4), "pooling window 4x4 is larger"),
    (lambda: ops.pool(IMAGE3, 2, kind="median"), "unknown pooling kind"),
    (lambda: ops.max_pool(IMAGE3, 2, padding=2), "only padding"),
    (lambda: ops.conv1d([1, 2, 3], [1, 1], stride=(1, 1)), "stride must be an int or 1"),
])
def test_bad_input_is_one_user_error(call, message):
  with pytest.raises(UserError, match=message) as info:
    call()
  assert isinstance(info.value, ValueError) and "\n" not in str(info.value)


def test_pooling_refuses_every_window_of_pure_padding():
  """The cases the two tests above leave out are refusals, each one line naming the fix."""
  for rng, size, f, stride, padding in random_cases(12, seed=6, pooling=False):
    with pytest.raises(UserError, match="pad less than the window"):
      ops.pool(np.ones((1, *size, 1), np.float32), f, stride=stride, padding=padding)
