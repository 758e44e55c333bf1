"""Output-size, parameter and receptive-field arithmetic, and model summaries.

The formulas are the course's: W2 = (W1 - F + 2P)/S + 1 for a conv, (W1 - F)/S + 1 for a pool,
K*F^2*D + K parameters. Summaries come from `jax.eval_shape`, so they cost no FLOPs and work
for any registered model that records its layers with `tap`.
"""

import math

import numpy as np
import jax
import jax.numpy as jnp

from cnnlab.errors import UserError
from cnnlab.models import create_model, layer_outputs
from cnnlab.ops import same_padding


def _pair(padding):
  if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
    return int(padding), int(padding)
  if isinstance(padding, (tuple, list)) and len(padding) == 2:
    return int(padding[0]), int(padding[1])
  raise UserError(f"padding must be 'valid', 'same', an int or a (before, after) pair, "
                  f"got {padding!r}")


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
  if isinstance(padding, str):
    word = padding.strip().lower()
    if word == "same":
      return -(-w // stride)
    if word != "valid":
      raise UserError(f"unknown padding {padding!r}; use 'valid', 'same' or a number of "
                      "zero pixels such as 1")
    lo = hi = 0
    floor = True
  else:
    lo, hi = _pair(padding)
    if lo < 0 or hi < 0:
      raise UserError(f"padding must not be negative, got {padding!r}")
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
  lo, hi = same_padding(w, f, stride) if padding == "same" else (
      (0, 0) if padding == "valid" else _pair(padding))
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
  lo, hi = (0, 0) if isinstance(padding, str) else _pair(padding)
  out = conv_output_size(w, f, stride, (lo, hi), floor=True)
  p = f"2*{lo}" if lo == hi else f"{lo}+{hi}"
  text = ("(W1 - F)/S + 1" if pool and lo + hi == 0 else "(W1 - F + 2P)/S + 1")
  text += f" = ({w} - {f} + {p})/{stride} + 1"
  exact = (w - f + lo + hi) / stride + 1
  if exact != out:
    return text + f" = {exact:g} -> {out} (floor: the last pixel(s) are never covered)"
  return text + f" = {out}"


# ----------------------------------------------------------------------------- summaries

def _size(tree):
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(tree))


def summarize(model, input_shape=(28, 28, 1), **hparams):
  """Rows (layer, output shape, params, FLOPs) of a model, or registry name, plus totals.

  Rows are the model's taps in forward order (`models.layer_outputs`). A parameter-owning
  module without a tap of its own (e.g. fashion_cnn_bn's bn1, applied inside the conv1 block)
  is counted in the row of the nearest tapped module created before it, and named there
  ("conv1 +bn1"). FLOPs per image count only multiply-adds of conv/dense kernels, as
  2 * kernel size * output positions; biases, activations, BatchNorm and pooling are not.
  """
  if isinstance(model, str):
    name, model = model, create_model(model, **hparams)
  else:
    name = type(model).__name__
  if not all(isinstance(d, (int, np.integer)) and d > 0 for d in input_shape):
    raise UserError(f"input shape must be positive ints such as 28,28,1, got {input_shape!r}")
  x = jax.ShapeDtypeStruct((1,) + tuple(input_shape), jnp.float32)
  created = []  # module creation order, read while tracing: eval_shape's dicts come back sorted

  def init(x):
    variables = model.init(jax.random.PRNGKey(0), x)
    created.extend(variables.get("params", {}))
    return variables

  try:
    variables = jax.eval_shape(init, x)
    _, outputs = layer_outputs(model, variables, x)
  except (TypeError, ValueError, ZeroDivisionError) as err:
    if isinstance(err, UserError):
      raise
    raise UserError(f"model {name!r} cannot take input shape {tuple(input_shape)} "
                    f"({str(err).splitlines()[0]}); give (height, width, channels) large "
                    "enough for its pooling, e.g. 28,28,1") from None
  params = variables.get("params", {})
  stats = {k: v for k, v in variables.items() if k != "params"}
  owner, last = {}, None
  for module in created:
    last = module if module in outputs else last
    owner.setdefault(last or module, []).append(module)
  rows = []
  for layer, out in outputs.items():
    modules = owner.pop(layer, [])
    kernels = [params[m]["kernel"] for m in modules if "kernel" in params[m]]
    positions = int(np.prod(out.shape[1:-1]))
    rows.append(dict(
        layer=" +".join([layer] + [m for m in modules if m != layer]),
        shape=(None,) + tuple(out.shape[1:]),
        params=sum(_size(params[m]) for m in modules),
        flops=sum(2 * int(np.prod(k.shape)) * positions for k in kernels
                  if k.shape[-1] == out.shape[-1]),
        kind=_kind(params.get(layer, {}))))
  for module, modules in owner.items():  # modules created before any tap (rare): own rows
    rows.insert(0, dict(layer=" +".join(modules), shape=None, flops=0, kind="",
                        params=sum(_size(params[m]) for m in modules)))
  trainable = _size(params)
  return dict(name=name, input_shape=tuple(input_shape), rows=rows, trainable=trainable,
              non_trainable=_size(stats), total=trainable + _size(stats),
              flops=sum(r["flops"] for r in rows))


def _kind(p):
  kernel = p.get("kernel") if hasattr(p, "get") else None
  if kernel is not None:
    return "Dense" if kernel.ndim == 2 else f"Conv{kernel.ndim - 2}D"
  if hasattr(p, "get") and "scale" in p:
    return "Norm"
  return ""


def format_summary(summary):
  """The Keras-style table of `summarize` (numbers with thousands separators)."""
  shape = lambda s: "?" if s is None else "(" + ", ".join(str(v) for v in s) + ")"
  line, bar = "_" * 86, "=" * 86
  out = [f'Model: "{summary["name"]}"  input {shape((None,) + summary["input_shape"])}', line,
         f" {'Layer (type)':<30}{'Output Shape':<24}{'Param #':>12}{'FLOPs/image':>18}", bar]
  for i, r in enumerate(summary["rows"]):
    label = r["layer"] + (f" ({r['kind']})" if r["kind"] else "")
    out.append(f" {label:<30}{shape(r['shape']):<24}{r['params']:>12,}{r['flops']:>18,}")
    out.append(line if i + 1 < len(summary["rows"]) else bar)
  out += [f"Total params: {summary['total']:,}",
          f"Trainable params: {summary['trainable']:,}",
          f"Non-trainable params: {summary['non_trainable']:,}" +
          (" (BatchNorm running statistics)" if summary["non_trainable"] else ""),
          f"FLOPs per image: {summary['flops']:,} (2 x multiply-adds of conv/dense kernels)",
          line]
  return "\n".join(out)
