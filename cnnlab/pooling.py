"""The one pooling implementation of cnnlab: `pool_nhwc`, behind ops.pool and the model layers.

Its numbers are always lax.reduce_window's. The path is chosen per platform when the program
is lowered (`jax.lax.platform_dependent`), so one traced program serves every backend: on
XLA:CPU, whose reduce_window gradient (select_and_scatter) is slow, reshape + reduce and
elementwise maxima (the course CNN trained about twice as fast); elsewhere reduce_window
itself, the path TPU and GPU compilers are built for.
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax


def window_and_strides(window, stride=None):
  """(window, strides) as 2-tuples from ints or pairs; the stride defaults to the window."""
  win = (window, window) if isinstance(window, int) else tuple(window)
  strides = win if stride is None else (stride, stride) if isinstance(stride, int) else tuple(stride)
  return win, strides


def pool_nhwc(x, window=2, stride=None, kind="max", pads=((0, 0), (0, 0))):
  """Pooling of an (N, H, W, C) batch: the one implementation behind every pool in cnnlab.

  `pads` are (before, after) pixels per spatial axis (resolved by ops.resolve_padding,
  checked by ops.pool), which never win: max pads with -inf, min with +inf, avg divides by
  the real pixels. On CPU:
  - windows that tile the (padded) image, stride == window: reshape + reduce (rows VALID never
    reads are cropped), and max/min send each window's gradient to its first extreme
    (`_tiled_extreme`), as select_and_scatter does;
  - other max/min pools: an elementwise max/min over the window's shifted, strided views;
  - average pools: reshape + mean when the windows tile, else reduce_window sums divided by
    the count of real pixels (the same on every platform).
  """
  win, strides = window_and_strides(window, stride)
  pads = tuple(tuple(p) for p in pads)
  if kind == "avg":
    return _avg_pool(x, win, strides, pads)
  if any(p != (0, 0) for p in pads):
    fill = jnp.asarray(-jnp.inf if kind == "max" else jnp.inf, x.dtype)
    x = jnp.pad(x, ((0, 0),) + pads + ((0, 0),), constant_values=fill)
  if strides == win:
    _, h, w, _ = x.shape
    if h % win[0] or w % win[1]:
      x = x[:, :h - h % win[0], :w - w % win[1]]
    cpu = lambda x: _tiled_extreme(x, win, kind)
  else:
    cpu = lambda x: _shifted_extreme(x, win, strides, kind)
  return lax.platform_dependent(x, cpu=cpu, default=lambda x: _reduce_window(x, win, strides, kind))


def _reduce_window(x, win, strides, kind):
  """XLA's own max/min pool (VALID: the padding is already in x); select_and_scatter gradient."""
  init, op = (-jnp.inf, lax.max) if kind == "max" else (jnp.inf, lax.min)
  # a Python scalar init: lax.reduce_window recognises max/min (and their gradients) only then
  return lax.reduce_window(x, init, op, (1,) + win + (1,), (1,) + strides + (1,), "VALID")


def _avg_pool(x, win, strides, pads):
  n, h, w, c = x.shape
  if strides == win and all(p == (0, 0) for p in pads) and h % win[0] == 0 and w % win[1] == 0:
    return x.reshape(n, h // win[0], win[0], w // win[1], win[1], c).mean(axis=(2, 4))
  dims, st = (1,) + win + (1,), (1,) + strides + (1,)
  total = lax.reduce_window(x, 0.0, lax.add, dims, st, ((0, 0),) + pads + ((0, 0),))
  count = lax.reduce_window(jnp.ones((h, w), x.dtype), 0.0, lax.add, win, strides, pads)
  return total / count[None, :, :, None]


def _shifted_extreme(x, win, strides, kind):
  """max/min over the window's kh*kw shifted views, in row-major window order.

  The same numbers as reduce_window; the gradient is elementwise (jnp.maximum's), which on
  CPU is much faster than select_and_scatter (inception_mini's 3x3 SAME branch pool).
  """
  n, h, w, c = x.shape
  (kh, kw), (sh, sw) = win, strides
  ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
  views = [lax.slice(x, (0, i, j, 0), (n, i + sh * (ho - 1) + 1, j + sw * (wo - 1) + 1, c),
                     (1, sh, sw, 1)) for i in range(kh) for j in range(kw)]
  return functools.reduce(jnp.maximum if kind == "max" else jnp.minimum, views)


def _windows(x, win):
  n, h, w, c = x.shape
  return x.reshape(n, h // win[0], win[0], w // win[1], win[1], c)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _tiled_extreme(x, win, kind):
  """Max/min of tiling windows; each window's gradient goes to its first extreme.

  The gradient autodiff derives from jnp.max (tie counting, divide, broadcast) costs more
  than the pool itself; this is one select pass per window position, visited in row-major
  order as XLA's select_and_scatter does for reduce_window (flax's max_pool): same gradient.
  """
  return (jnp.max if kind == "max" else jnp.min)(_windows(x, win), axis=(2, 4))


def _tiled_fwd(x, win, kind):
  y = _tiled_extreme(x, win, kind)
  return y, (x, y)


def _tiled_bwd(win, kind, res, g):
  x, y = res
  x6 = _windows(x, win)
  taken = jnp.zeros(g.shape, bool)
  rows = []
  for a in range(win[0]):
    cols = []
    for b in range(win[1]):
      is_extreme = (x6[:, :, a, :, b, :] == y) & ~taken
      cols.append(jnp.where(is_extreme, g, jnp.zeros_like(g)))
      taken = taken | is_extreme
    rows.append(jnp.stack(cols, axis=3))
  return (jnp.stack(rows, axis=2).reshape(x.shape),)


_tiled_extreme.defvjp(_tiled_fwd, _tiled_bwd)
