"""Output-size, parameter and receptive-field arithmetic, in the course's formulas.

W2 = (W1 - F + 2P)/S + 1 for a conv, (W1 - F)/S + 1 for a pool, K*F^2*D + K parameters.
A model's layer-by-layer table (shapes, parameters, FLOPs) is cnnlab.inspect.layers.summarize.
"""

import math

import numpy as np

from cnnlab.errors import UserError
from cnnlab.ops import resolve_padding, same_padding


def _pair(padding, w, f, stride):
  """(before, after) pixels of one dimension: 'valid', 'same', P or a pair (ops' one rule)."""
  return resolve_padding(padding, (w,), (f,), (stride,))[0]


def _check_ints(w, f, stride):
  for name, v in (("input size", w), ("filter size", f), ("stride", stride)):
    if not isinstance(v, (int, np.integer)) or v < 1:
      raise UserError(f"{name} must be a positive int, got {v!r}")


def conv_output_size(w, f, stride=1, padding=0, *, floor=False):
  """W2 = (W1 - F + 2P)/S + 1 for padding P (or 'valid'/'same', the TF/XLA rules).

  An explicit P for which (W1 - F + 2P)/S is not an integer means the filter does not fit the
  last pixels: that is reported as a UserError unless floor=True (what PyTorch and XLA do
  silently). 'valid' floors by definition; 'same' gives ceil(W1/S).
  """
  _check_ints(w, f, stride)
  lo, hi = _pair(padding, w, f, stride)
  if isinstance(padding, str):
    if padding.strip().lower() == "same":
      return -(-w // stride)
    floor = True  # 'valid'
  span = w + lo + hi - f
  if span < 0:
    raise UserError(f"the filter ({f}) is larger than the padded input ({w + lo + hi})")
  if span % stride and not floor:
    raise UserError(f"(W - F + 2P)/S = ({w} - {f} + {lo + hi})/{stride} = {span / stride:g} is "
                    f"not an integer: the filter does not fit the last {span % stride} "
                    "pixel(s); change the padding or stride, or ask for floor semantics")
  return span // stride + 1


def pool_output_size(w, f, stride=None, padding="valid", *, floor=False):
  """W2 = (W1 - F)/S + 1 (stride defaults to the window); padding as in conv_output_size."""
  return conv_output_size(w, f, f if stride is None else stride, padding, floor=floor)


def conv_params(k, f, d, bias=True):
  """K * F^2 * D + K: K filters of size F x F (or F_h x F_w) on D input channels."""
  area = f * f if isinstance(f, (int, np.integer)) else math.prod(f)
  return k * area * d + (k if bias else 0)


def receptive_field(layers):
  """Input pixels seen by one output of a stack of (filter, stride) layers (ints = stride 1).

  r grows by (F - 1) * jump at each layer, where jump is the product of earlier strides.
  """
  r, jump = 1, 1
  for layer in layers:
    f, s = (layer, 1) if isinstance(layer, (int, np.integer)) else tuple(layer)
    _check_ints(1, f, s)
    r += (f - 1) * jump
    jump *= s
  return r


def pixel_usage(w, f, stride=1, padding=0):
  """How many filter placements use each input pixel (a w x w array): why padding exists."""
  lo, hi = _pair(padding, w, f, stride)
  counts = np.zeros((w + lo + hi,) * 2, np.int64)
  n = conv_output_size(w, f, stride, (lo, hi), floor=True)
  for i in range(n):
    for j in range(n):
      counts[i * stride:i * stride + f, j * stride:j * stride + f] += 1
  return counts[lo:lo + w, lo:lo + w]


def size_arithmetic(w, f, stride=1, padding="valid", pool=False):
  """One line of teaching arithmetic for an output size, e.g. '(3 - 2 + 2*0)/1 + 1 = 2'."""
  if isinstance(padding, str) and padding.strip().lower() == "same":
    lo, hi = same_padding(w, f, stride)
    out = -(-w // stride)
    return (f"SAME: ceil(W1/S) = ceil({w}/{stride}) = {out}; padding (W2-1)*S + F - W1 = "
            f"({out}-1)*{stride} + {f} - {w} -> {lo + hi} in total: {lo} before, {hi} after")
  lo, hi = _pair(padding, w, f, stride)
  out = conv_output_size(w, f, stride, (lo, hi), floor=True)
  p = f"2*{lo}" if lo == hi else f"{lo}+{hi}"
  text = ("(W1 - F)/S + 1" if pool and lo + hi == 0 else "(W1 - F + 2P)/S + 1")
  text += f" = ({w} - {f} + {p})/{stride} + 1"
  exact = (w - f + lo + hi) / stride + 1
  if exact != out:
    return text + f" = {exact:g} -> {out} (floor: the last pixel(s) are never covered)"
  return text + f" = {out}"
