r"""`conv`: a teaching calculator: convolve or pool a small matrix and show the size arithmetic.

  ./launch.sh conv --image='[[1,2,3],[4,5,6],[7,8,9]]' --kernel='[[1,1],[1,1]]' \
      --padding=same
  ./launch.sh conv --image='[[4,3],[2,1]]' --pool=max --window=2 --stride=1

The image is (H, W) or (H, W, C) nested lists; the kernel (F, F), (F, F, C, K) or the name of
a course edge mask (vertical, horizontal). One operation per call, so every number printed
belongs to it.
"""

import ast
import json

from absl import flags

from cnnlab.cli.common import require
from cnnlab.errors import UserError

flags.DEFINE_string("image", None, "nested list, e.g. '[[1,2,3],[4,5,6],[7,8,9]]'")
flags.DEFINE_string("kernel", None, "nested list, or 'vertical' / 'horizontal' (edge masks)")
flags.DEFINE_string("stride", None, "int or 'S_h,S_w' (default 1 for a conv, the window for a "
                    "pool)")
flags.DEFINE_string("padding", "valid", "valid, same, a number of zero pixels P, or 'P_h,P_w'")
flags.DEFINE_string("bias", None, "one bias per filter: a number or a list of K numbers")
flags.DEFINE_string("pool", None, "pool instead of convolving: max, avg or min")
flags.DEFINE_string("window", "2", "pooling window: int or 'F_h,F_w'")
FLAGS = flags.FLAGS

# Mask names -> cnnlab.ops constants. cnnlab.ops (JAX) and numpy are imported inside the
# functions, so `conv --help` starts in a fraction of a second.
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


def pool_report(image, padding):
  """Lines describing a pooling of `image`: settings, size arithmetic, result."""
  from cnnlab import ops
  window = parse_ints(FLAGS.window, "window")
  stride = window if FLAGS.stride is None else parse_ints(FLAGS.stride, "stride")
  kind = FLAGS.pool.lower()
  out = ops.pool(image, window, stride=stride, padding=padding, kind=kind)
  win = window if isinstance(window, tuple) else (window, window)
  return [f"{kind} pooling, window {shape_text(win)}, stride {FLAGS.stride or window}, "
          f"padding {FLAGS.padding} (no parameters; channels unchanged)",
          *size_lines(image.shape[:2], win, stride, padding, pool=True),
          f"pooled ({shape_text(out.shape)}):\n{matrix_text(out)}"]


def conv_report(image, padding):
  """Lines describing a convolution of `image`: kernel, size arithmetic, parameters, result."""
  from cnnlab import ops, shapes
  name = FLAGS.kernel.strip().lower()
  kernel = (ops.as_array(getattr(ops, MASKS[name])) if name in MASKS
            else parse_matrix(FLAGS.kernel, "kernel"))
  stride = 1 if FLAGS.stride is None else parse_ints(FLAGS.stride, "stride")
  bias = None if FLAGS.bias is None else parse_matrix(FLAGS.bias, "bias")
  out = ops.conv2d(image, kernel, stride=stride, padding=padding, bias=bias)
  f = tuple(kernel.shape[:2])
  depth = image.shape[2] if image.ndim == 3 else 1
  k = kernel.shape[-1] if kernel.ndim == 4 else 1
  return [f"kernel ({shape_text(kernel.shape)}):\n{matrix_text(kernel)}",
          f"convolution, stride {FLAGS.stride or 1}, padding {FLAGS.padding}",
          *size_lines(image.shape[:2], f, stride, padding, pool=False),
          f"parameters K*F_h*F_w*D + K (one bias per filter) = {k}*{f[0]}*{f[1]}*{depth} + "
          f"{k} = {shapes.conv_params(k, f, depth)}",
          f"feature map{'s' if out.ndim == 3 else ''} ({shape_text(out.shape)}):\n"
          f"{matrix_text(out)}"]


def main(argv):
  require(FLAGS.image is not None, "give the input with --image='[[1,2,3],[4,5,6],[7,8,9]]'")
  require((FLAGS.kernel is None) != (FLAGS.pool is None),
          "give either --kernel=... (convolve) or --pool=max|avg|min (pool), one of them")
  image = parse_matrix(FLAGS.image, "image")
  require(image.ndim in (2, 3), f"--image must be a 2D (H,W) or 3D (H,W,C) nested list, got "
          f"shape {tuple(image.shape)}")
  padding = parse_padding(FLAGS.padding)
  report = (pool_report if FLAGS.pool is not None else conv_report)(image, padding)
  print(f"image ({shape_text(image.shape)}):\n{matrix_text(image)}")
  print("\n".join(report))
