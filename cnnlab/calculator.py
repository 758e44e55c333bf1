"""The `conv` command's teaching calculator: convolve or pool a small matrix given as text and
describe it (kernel, size arithmetic, parameter count, result), one operation per call.

Flags arrive as the text the user typed, so every message names the flag to fix.
"""

import ast
import json

from cnnlab.errors import UserError

# Mask names -> cnnlab.ops constants. cnnlab.ops (JAX) and numpy are imported inside the
# functions, so `conv --help` (which imports this module lazily anyway) stays fast.
MASKS = {"vertical": "VERTICAL_EDGE", "horizontal": "HORIZONTAL_EDGE"}


def parse_matrix(text, flag):
  """A nested list of numbers from JSON or Python literal syntax; a UserError otherwise."""
  try:
    value = json.loads(text)
  except ValueError:
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      raise UserError(f"--{flag}={text!r} is not a nested list of numbers; write e.g. "
                      "'[[1,2],[3,4]]'") from None
  from cnnlab import ops
  return ops.as_array(value, flag)


def parse_ints(text, flag):
  """'2' -> 2, '2,1' -> (2, 1)."""
  try:
    values = tuple(int(v) for v in text.split(","))
  except ValueError:
    raise UserError(f"--{flag}={text!r} must be an int or two ints such as 2,1") from None
  return values[0] if len(values) == 1 else values


def parse_padding(text):
  word = text.strip().lower()
  return word if word.isalpha() else parse_ints(word, "padding")


def matrix_text(a, indent="  "):
  """Rows of %g numbers, right-aligned; one 2D map per channel (3D) or per filter/channel (4D)."""
  import numpy as np
  a = np.asarray(a)
  if a.ndim == 4:
    return "\n".join(f"{indent}[filter {k}, input channel {c}]\n" +
                     matrix_text(a[:, :, c, k], indent * 2)
                     for k in range(a.shape[3]) for c in range(a.shape[2]))
  if a.ndim == 3:
    return "\n".join(f"{indent}[channel {c}]\n" + matrix_text(a[..., c], indent * 2)
                     for c in range(a.shape[-1]))
  if a.ndim == 1:
    a = a[None]
  cells = [[f"{v:g}" for v in row] for row in a]
  width = max(len(c) for row in cells for c in row)
  return "\n".join(indent + " ".join(c.rjust(width) for c in row) for row in cells)


def size_lines(sizes, window, stride, padding, pool):
  """The output-size arithmetic per axis (one line when both axes agree)."""
  from cnnlab import shapes
  strides = stride if isinstance(stride, tuple) else (stride, stride)
  pads = padding if isinstance(padding, tuple) else (padding, padding)
  lines = [shapes.size_arithmetic(n, f, s, p, pool=pool)
           for n, f, s, p in zip(sizes, window, strides, pads)]
  if lines[0] == lines[1]:
    return [f"output size (rows and columns): {lines[0]}"]
  return [f"output rows:    {lines[0]}", f"output columns: {lines[1]}"]


def shape_text(shape):
  return "x".join(str(v) for v in shape)


def pool_report(image, padding, pool, window_text, stride_text, padding_text):
  """Lines describing a pooling of `image`: settings, size arithmetic, result."""
  from cnnlab import ops
  window = parse_ints(window_text, "window")
  stride = window if stride_text is None else parse_ints(stride_text, "stride")
  kind = pool.lower()
  out = ops.pool(image, window, stride=stride, padding=padding, kind=kind)
  win = window if isinstance(window, tuple) else (window, window)
  return [f"{kind} pooling, window {shape_text(win)}, stride {stride_text or window}, "
          f"padding {padding_text} (no parameters; channels unchanged)",
          *size_lines(image.shape[:2], win, stride, padding, pool=True),
          f"pooled ({shape_text(out.shape)}):\n{matrix_text(out)}"]


def conv_report(image, padding, kernel_text, stride_text, padding_text, bias_text):
  """Lines describing a convolution of `image`: kernel, size arithmetic, parameters, result."""
  from cnnlab import ops, shapes
  name = kernel_text.strip().lower()
  kernel = (ops.as_array(getattr(ops, MASKS[name])) if name in MASKS
            else parse_matrix(kernel_text, "kernel"))
  stride = 1 if stride_text is None else parse_ints(stride_text, "stride")
  bias = None if bias_text is None else parse_matrix(bias_text, "bias")
  out = ops.conv2d(image, kernel, stride=stride, padding=padding, bias=bias)
  f = tuple(kernel.shape[:2])
  depth = image.shape[2] if image.ndim == 3 else 1
  k = kernel.shape[-1] if kernel.ndim == 4 else 1
  return [f"kernel ({shape_text(kernel.shape)}):\n{matrix_text(kernel)}",
          f"convolution, stride {stride_text or 1}, padding {padding_text}",
          *size_lines(image.shape[:2], f, stride, padding, pool=False),
          f"parameters K*F_h*F_w*D + K (one bias per filter) = {k}*{f[0]}*{f[1]}*{depth} + "
          f"{k} = {shapes.conv_params(k, f, depth)}",
          f"feature map{'s' if out.ndim == 3 else ''} ({shape_text(out.shape)}):\n"
          f"{matrix_text(out)}"]


def report(image_text, kernel=None, pool=None, stride=None, padding="valid", bias=None,
           window="2"):
  """The calculator's whole output for one call (the image, then the operation's lines)."""
  image = parse_matrix(image_text, "image")
  if image.ndim not in (2, 3):
    raise UserError(f"--image must be a 2D (H,W) or 3D (H,W,C) nested list, got shape "
                    f"{tuple(image.shape)}")
  pad = parse_padding(padding)
  lines = (pool_report(image, pad, pool, window, stride, padding) if pool is not None
           else conv_report(image, pad, kernel, stride, padding, bias))
  return "\n".join([f"image ({shape_text(image.shape)}):\n{matrix_text(image)}", *lines])
