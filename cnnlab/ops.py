"""Convolution and pooling primitives in the course's vocabulary (NHWC, HWIO kernels).

Every check below reads only shapes, never values, so the functions stay jit-able and
differentiable; a mistake becomes one UserError that names the numbers involved instead of
an XLA message or, worse, a silent broadcast.
"""


import numpy as np
import jax
import jax.numpy as jnp
from jax import lax

from cnnlab.errors import UserError
from cnnlab.pooling import pool_nhwc  # the one pooling core; `pool` below is its teaching face

# The course's classic edge masks (read-only, so nobody edits the shared constant).
VERTICAL_EDGE = np.array([[0, 0, 0], [-1, 1, 0], [0, 0, 0]], np.float32)
HORIZONTAL_EDGE = np.array([[0, -1, 0], [0, 1, 0], [0, 0, 0]], np.float32)
VERTICAL_EDGE.flags.writeable = False
HORIZONTAL_EDGE.flags.writeable = False

_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}
POOL_KINDS = ("max", "avg", "min")


# ----------------------------------------------------------------------------- validation

def as_array(x, what="image"):
  """A float array from an array or nested lists; ragged or non-numeric lists are UserErrors.

  Integers become float32 (the default); floating arrays keep their dtype. Tracers pass
  through untouched so everything stays jit-able.
  """
  if not isinstance(x, (jax.Array, np.ndarray, np.generic)):
    try:
      x = np.asarray(x)
    except (ValueError, TypeError):
      raise UserError(f"the {what} is a ragged nested list (rows of different lengths); "
                      "every row must have the same number of values") from None
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number)
                                 or np.issubdtype(x.dtype, np.bool_)):
      raise UserError(f"the {what} must be a rectangular nested list of numbers, "
                      f"got values of type {x.dtype}")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    x = x.astype(np.float32) if isinstance(x, (np.ndarray, np.generic)) else x.astype(jnp.float32)
  return jnp.asarray(x)


def tuple_arg(value, nd, what):
  """An int or a tuple of `nd` positive ints (stride, window) as a tuple; else a UserError."""
  values = (value,) * nd if isinstance(value, (int, np.integer)) else tuple(value)
  if len(values) != nd or not all(isinstance(v, (int, np.integer)) for v in values):
    raise UserError(f"{what} must be an int or {nd} ints, got {value!r}")
  if any(v < 1 for v in values):
    why = " (a stride of 0 would never move the filter)" if what == "stride" else ""
    raise UserError(f"{what} must be at least 1, got {value!r}{why}")
  return tuple(int(v) for v in values)


def same_padding(size, f, stride):
  """TF/XLA SAME: out = ceil(size/stride); the odd pixel of padding goes bottom/right."""
  out = -(-size // stride)
  total = max((out - 1) * stride + f - size, 0)
  return total // 2, total - total // 2


def resolve_padding(padding, sizes, window, strides):
  """Per-dimension (before, after) zero pixels for 'valid', 'same', an int or a tuple.

  A tuple holds one int per spatial dimension (symmetric) or one (before, after) pair per
  dimension; for 1D a bare (before, after) pair is accepted too. The one padding rule of
  cnnlab: ops.conv/pool, layers.Conv (nn.Conv's "SAME"/"VALID"/int/pairs give the pads
  lax.padtype_to_pads gives) and the size arithmetic of shapes.py all resolve through it.
  """
  nd = len(sizes)
  if isinstance(padding, str):
    word = padding.strip().lower()
    if word == "valid":
      return ((0, 0),) * nd
    if word == "same":
      return tuple(same_padding(n, f, s) for n, f, s in zip(sizes, window, strides))
    raise UserError(f"unknown padding {padding!r}; use 'valid', 'same' or a number of "
                    "zero pixels such as 1")
  if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
    pads = ((int(padding), int(padding)),) * nd
  else:
    try:
      items = tuple(padding)
      if nd == 1 and len(items) == 2 and all(isinstance(p, (int, np.integer)) for p in items):
        items = (items,)
      if len(items) != nd:
        raise ValueError
      pads = tuple((int(p), int(p)) if isinstance(p, (int, np.integer)) else
                   tuple(int(q) for q in p) for p in items)
      if any(len(p) != 2 for p in pads):
        raise ValueError
    except (TypeError, ValueError):
      forms = ("an int or a (before, after) pair" if nd == 1 else
               f"an int, {nd} ints or {nd} (before, after) pairs")
      raise UserError(f"padding must be 'valid', 'same', {forms}, got {padding!r}") from None
  if any(p < 0 for pair in pads for p in pair):
    raise UserError(f"padding must not be negative, got {padding!r}")
  return pads


def _check_fits(sizes, window, pads, what):
  padded = [n + lo + hi for n, (lo, hi) in zip(sizes, pads)]
  if any(f > p for f, p in zip(window, padded)):
    fmt = lambda t: "x".join(str(v) for v in t)
    raise UserError(f"the {what} {fmt(window)} is larger than the padded input {fmt(padded)}; "
                    "use a smaller window, pad more, or padding='same'")


def _layout(layout, nd):
  """True when the image is channels-first (NCHW habits), False for channels-last."""
  last, first = "N" + _SPATIAL[nd] + "C", "NC" + _SPATIAL[nd]
  if layout in (last, last[1:], "channels_last", None):
    return False
  if layout in (first, first[1:], "channels_first"):
    return True
  raise UserError(f"unknown layout {layout!r}; use {last!r} (channels last, the default) "
                  f"or {first!r} (PyTorch)")


def _to_batched(x, nd, channels_first):
  """(N, *spatial, C) view of x plus what to drop again: x may lack the batch/channel axes.

  Rank nd: spatial only; nd+1: one image with channels ((H,W,C), or (C,H,W) channels-first);
  nd+2: a batch. Nothing else is guessed.
  """
  rank = x.ndim
  if rank == nd:
    return x[None, ..., None], True, True
  if rank == nd + 1:
    x = jnp.moveaxis(x, 0, -1) if channels_first else x
    return x[None], True, False
  if rank == nd + 2:
    return (jnp.moveaxis(x, 1, -1) if channels_first else x), False, False
  raise UserError(f"a {nd}D operation takes an image of rank {nd} (no batch, no channels), "
                  f"{nd + 1} (one image with channels) or {nd + 2} (a batch); got shape "
                  f"{tuple(x.shape)}")


def _from_batched(y, drop_batch, drop_channels, channels_first):
  if drop_channels:
    y = y[..., 0]
  elif channels_first:
    y = jnp.moveaxis(y, -1, 1)
  return y[0] if drop_batch else y


# ----------------------------------------------------------------------------- convolution

def conv(x, kernel, nd, *, stride=1, padding="valid", bias=None, layout=None,
         kernel_layout="HWIO"):
  """N-d convolution (cross-correlation, as in every DL library); see `conv2d`."""
  channels_first = _layout(layout, nd)
  x = as_array(x, "image")
  kernel = as_array(kernel, "kernel")
  xb, drop_batch, drop_ch = _to_batched(x, nd, channels_first)
  if kernel.ndim == nd:
    kernel, plain_kernel = kernel[..., None, None], True
  elif kernel.ndim == nd + 2:
    plain_kernel = False
    if kernel_layout == "OIHW":
      kernel = jnp.moveaxis(kernel, (0, 1), (-1, -2))
    elif kernel_layout != "HWIO":
      raise UserError(f"unknown kernel_layout {kernel_layout!r}; use 'HWIO' or 'OIHW'")
  else:
    raise UserError(f"a {nd}D kernel has shape (F,)*{nd} for one filter on one channel or "
                    f"{nd + 2} axes (spatial..., in_channels, filters); got {tuple(kernel.shape)}")
  window, c_in, k = tuple(kernel.shape[:nd]), kernel.shape[-2], kernel.shape[-1]
  if xb.shape[-1] != c_in:
    raise UserError(f"the image has {xb.shape[-1]} channel(s) but the kernel expects {c_in} "
                    f"(kernel shape {tuple(kernel.shape)}): a filter's depth must equal the "
                    "input's channel count")
  strides = tuple_arg(stride, nd, "stride")
  sizes = tuple(xb.shape[1:-1])
  pads = resolve_padding(padding, sizes, window, strides)
  _check_fits(sizes, window, pads, "kernel")
  spatial = _SPATIAL[nd]
  dn = ("N" + spatial + "C", spatial + "IO", "N" + spatial + "C")
  dtype = jnp.promote_types(xb.dtype, kernel.dtype)
  y = lax.conv_general_dilated(xb.astype(dtype), kernel.astype(dtype), strides, pads,
                               dimension_numbers=dn, precision=lax.Precision.HIGHEST)
  if bias is not None:
    b = as_array(bias, "bias")
    if b.ndim > 1 or (b.ndim == 1 and b.shape[0] != k):
      raise UserError(f"one bias per filter: the kernel has {k} filter(s) but the bias has "
                      f"shape {tuple(b.shape)}")
    y = y + b.astype(y.dtype)
  return _from_batched(y, drop_batch, drop_ch and plain_kernel, channels_first)


def conv1d(x, kernel, *, stride=1, padding="valid", bias=None, layout="NWC",
           kernel_layout="HWIO"):
  """1D convolution of signals (N, W, C); see `conv2d` for the arguments."""
  return conv(x, kernel, 1, stride=stride, padding=padding, bias=bias, layout=layout,
              kernel_layout=kernel_layout)


def conv2d(x, kernel, *, stride=1, padding="valid", bias=None, layout="NHWC",
           kernel_layout="HWIO"):
  """2D convolution: each filter slides over the image; sum of products + one bias per filter.

  x: (H, W), (H, W, C) or (N, H, W, C) (or the channels-first forms with layout="NCHW"),
  nested lists welcome. kernel: (F, F) for one filter on one channel, or (F_h, F_w, C_in, K)
  (kernel_layout="OIHW" for PyTorch's (K, C_in, F_h, F_w)). padding: "valid", "same"
  (TF/XLA: out = ceil(in/stride), extra pixel bottom/right), an int P or a per-side tuple.
  Returns the feature maps with the same leading axes as x (2D in, 2D out for (F, F) kernels).
  """
  return conv(x, kernel, 2, stride=stride, padding=padding, bias=bias, layout=layout,
              kernel_layout=kernel_layout)


def conv3d(x, kernel, *, stride=1, padding="valid", bias=None, layout="NDHWC",
           kernel_layout="HWIO"):
  """3D convolution of volumes / video (N, D, H, W, C); see `conv2d` for the arguments."""
  return conv(x, kernel, 3, stride=stride, padding=padding, bias=bias, layout=layout,
              kernel_layout=kernel_layout)


# ----------------------------------------------------------------------------- pooling

def pool(x, window, *, stride=None, padding="valid", kind="max", layout="NHWC"):
  """2D max / avg / min pooling of each channel; no parameters, channel count unchanged.

  Stride defaults to the window (every element used once). Padded pixels never win: max pads
  with -inf, min with +inf, and avg divides by the number of real pixels in the window
  (TensorFlow's rule; PyTorch's default counts the zeros).
  """
  if kind not in POOL_KINDS:
    raise UserError(f"unknown pooling kind {kind!r}; use one of {', '.join(POOL_KINDS)}")
  channels_first = _layout(layout, 2)
  x = as_array(x, "image")
  xb, drop_batch, drop_ch = _to_batched(x, 2, channels_first)
  win = tuple_arg(window, 2, "window")
  strides = win if stride is None else tuple_arg(stride, 2, "stride")
  sizes = tuple(xb.shape[1:3])
  pads = resolve_padding(padding, sizes, win, strides)
  _check_fits(sizes, win, pads, "pooling window")
  if any(max(p) >= f for p, f in zip(pads, win)):
    raise UserError(f"padding {padding!r} is as large as the pooling window {win}: some windows "
                    "would hold only padding; pad less than the window")
  y = pool_nhwc(xb, win, strides, kind, pads)
  return _from_batched(y, drop_batch, drop_ch, channels_first)


def max_pool(x, window=2, *, stride=None, padding="valid", layout="NHWC"):
  """Max pooling (the usual kind); see `pool`."""
  return pool(x, window, stride=stride, padding=padding, kind="max", layout=layout)


def avg_pool(x, window=2, *, stride=None, padding="valid", layout="NHWC"):
  """Average pooling; see `pool`."""
  return pool(x, window, stride=stride, padding=padding, kind="avg", layout=layout)


def min_pool(x, window=2, *, stride=None, padding="valid", layout="NHWC"):
  """Min pooling (dark features on a bright background); see `pool`."""
  return pool(x, window, stride=stride, padding=padding, kind="min", layout=layout)
