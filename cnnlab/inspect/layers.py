"""What a model is made of: one layer table (names, parameter groups, output shapes, parameters,
FLOPs) for the `summary` command and the figures, the conv layers and their kernels, and the
outputs of every layer for given images (feature maps).

Layer names come from the model's own taps (models/layers.Taps), so the same code serves
every model of the registry, from shapes alone (`jax.eval_shape`: no FLOPs, no weights).
"""

import functools
import math

import flax.linen as nn
import jax
import numpy as np

from cnnlab.errors import UserError, closest
from cnnlab.models import create_model, layer_outputs
from cnnlab.train import step as step_lib


def capture(model, state, images):
  """Every tapped layer output of one forward pass (eval mode): {name: array}, forward order."""
  _, outputs = layer_outputs(model, step_lib.variables(state), step_lib.to_float(images))
  return {name: np.asarray(v) for name, v in outputs.items()}


def layer_table(model, state, input_shape):
  """One row per tapped layer, in forward order: {name, groups, kind, shape, params, flops}.

  `state` is a TrainState or a variables dict, concrete or abstract (restore.abstract_model).
  A parameter group (a top-level module's parameters) belongs to the first tap recorded
  after it runs, so a BatchNorm without a tap of its own (fashion_cnn_bn's bn1) is listed in
  "conv1". The call order is read with nn.intercept_methods, since pytrees sort dict keys.
  FLOPs per image count only the multiply-adds of conv/dense kernels (2 * kernel size *
  output positions); biases, activations, BatchNorm and pooling are not counted.
  """
  variables = step_lib.variables(state) if hasattr(state, "params") else state
  abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), variables)
  events = []
  with nn.intercept_methods(functools.partial(_record_calls, events)):
    _, shapes = layer_outputs(model, abstract, jax.ShapeDtypeStruct((1, *input_shape), np.float32))
  params = abstract["params"]
  rows = {name: {"name": name, "groups": [], "shape": tuple(s.shape[1:])}
          for name, s in shapes.items()}
  pending = []
  for kind, name in events:
    if kind == "params" and name in params and name not in pending:
      pending.append(name)
    elif kind == "tap" and name in rows:
      rows[name]["groups"] += pending
      pending = []
  table = list(rows.values()) + [{"name": g, "groups": [g], "shape": None} for g in pending]
  for row in table:
    row.update(kind=" + ".join(_describe(g, params[g]) for g in row["groups"]),
               params=sum(_size(params[g]) for g in row["groups"]),
               flops=_flops([params[g] for g in row["groups"]], row["shape"]))
  return table


def _record_calls(events, next_fun, args, kwargs, context):
  """nn.intercept_methods hook: ("tap", layer name) and ("params", top-level module) calls."""
  module = context.module
  if context.method_name == "__call__" and module.parent is not None:
    top = module.scope.path[0] if module.scope.path else None
    if module.name == "taps" and args:
      events.append(("tap", args[0]))
    elif top is not None and (not events or events[-1] != ("params", top)):
      events.append(("params", top))
  return next_fun(*args, **kwargs)


def _size(tree):
  return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def _flops(groups, shape):
  positions = math.prod(shape[:-1]) if shape else 0
  kernels = [g["kernel"] for g in groups if hasattr(g, "get") and "kernel" in g]
  return sum(2 * math.prod(k.shape) * positions for k in kernels
             if shape and k.shape[-1] == shape[-1])


def _describe(name, group):
  shape = tuple(group["kernel"].shape) if hasattr(group, "get") and "kernel" in group else ()
  if len(shape) == 4:
    return f"Conv {shape[0]}x{shape[1]}, {shape[3]} filters"
  return f"Dense {shape[1]}" if len(shape) == 2 else name


def summarize(model, input_shape=(28, 28, 1), **hparams):
  """The Keras-style summary of a model (or registry name): rows of layer_table plus totals.

  A row is named by its tap plus the parameter groups it holds beside its own ("conv1 +bn1");
  its type comes from the group of its own name (Conv2D, Dense, Norm).
  """
  name, model = (model, create_model(model, **hparams)) if isinstance(model, str) else (
      type(model).__name__, model)
  if not all(isinstance(d, (int, np.integer)) and d > 0 for d in input_shape):
    raise UserError(f"input shape must be positive ints such as 28,28,1, got {input_shape!r}")
  x = jax.ShapeDtypeStruct((1,) + tuple(input_shape), np.float32)
  try:
    variables = jax.eval_shape(functools.partial(model.init, train=False),
                               jax.ShapeDtypeStruct((2,), np.uint32), x)
    table = layer_table(model, variables, tuple(input_shape))
  except (TypeError, ValueError, ZeroDivisionError) as err:
    if isinstance(err, UserError):
      raise
    raise UserError(f"model {name!r} cannot take input shape {tuple(input_shape)} "
                    f"({str(err).splitlines()[0]}); give (height, width, channels) large "
                    "enough for its pooling, e.g. 28,28,1") from None
  params = variables.get("params", {})
  rows = [dict(layer=" +".join([r["name"]] + [g for g in r["groups"] if g != r["name"]]),
               shape=None if r["shape"] is None else (None,) + r["shape"], params=r["params"],
               flops=r["flops"], kind=_kind(params.get(r["name"], {}))) for r in table]
  trainable = _size(params)
  stats = _size({k: v for k, v in variables.items() if k != "params"})
  return dict(name=name, input_shape=tuple(input_shape), rows=rows, trainable=trainable,
              non_trainable=stats, total=trainable + stats, flops=sum(r["flops"] for r in rows))


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


def conv_layers(table, params):
  """Names of the tapped layers with a 4-D (HWIO) kernel, in forward order."""
  return [r["name"] for r in table if len(_kernel_shape(params, r["name"])) == 4]


def _kernel_shape(params, name):
  group = params.get(name)
  kernel = group.get("kernel") if hasattr(group, "get") else None
  return () if kernel is None else tuple(kernel.shape)


def kernel_of(params, name):
  """params[name]["kernel"] as numpy, or None for layers without one."""
  group = params.get(name)
  kernel = group.get("kernel") if hasattr(group, "get") else None
  return None if kernel is None else np.asarray(kernel)


def select_layers(table, params, requested=(), model_name="the model"):
  """The conv layers to draw: `requested`, checked, or by default the first two."""
  valid = conv_layers(table, params)
  for name in requested:
    if name not in valid:
      choices = ", ".join(valid) if valid else "none (it has no conv layer)"
      raise UserError(f"--layer={name}: model {model_name!r} has no conv layer {name!r}"
                      f"{closest(name, valid)}; its conv layers: {choices}")
  return list(requested) if requested else valid[:2]
