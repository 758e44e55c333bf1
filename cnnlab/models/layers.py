"""What every cnnlab model shares: named taps on layer outputs and the fast pooling layer.

Convention: a model creates `tap = Taps(name="taps")` and records every layer's output with
`x = tap("conv1", x)` in forward order; a layer with parameters carries the same name. Linen
reserves a submodule's name in every collection, so the outputs live in the child scope
"taps" (intermediates/taps/conv1) and can share their layer's name. Read them with
`layer_outputs`, which keeps forward order: summaries, feature maps and shape checks then
work for any model without special cases.
"""

import flax.linen as nn
import jax

from cnnlab import ops


class Taps(nn.Module):
  """Records layer outputs under their layer names (a child scope: no name clashes)."""

  def __call__(self, layer, x):
    self.sow("intermediates", layer, x)
    return x


def layer_outputs(model, variables, x):
  """(logits, {layer name: output}) in forward order, inference mode.

  Given jax.ShapeDtypeStructs (e.g. from jax.eval_shape(model.init, ...)) it returns shapes
  without computing anything. The order is read while tracing, since pytrees sort dict keys.
  """
  order = []

  def run(variables, x):
    logits, state = model.apply(variables, x, train=False, mutable=["intermediates"])
    taps = state["intermediates"]["taps"]
    order.extend(taps)  # insertion (= forward) order, before any pytree sorting
    return logits, {k: v[0] for k, v in taps.items()}

  abstract = any(isinstance(a, jax.ShapeDtypeStruct) for a in jax.tree.leaves((variables, x)))
  logits, outputs = jax.eval_shape(run, variables, x) if abstract else run(variables, x)
  return logits, {k: outputs[k] for k in order}


def max_pool(x, window=2, stride=None):
  """Max pooling over an NHWC batch (reshape+max when windows tile the image)."""
  return ops.pool_nhwc(x, window, stride, kind="max")


def avg_pool(x, window=2, stride=None):
  return ops.pool_nhwc(x, window, stride, kind="avg")
