"""What every cnnlab model shares: named taps on layer outputs and the fast pooling layer.

Convention: a model records every layer's output with `tap(self, name, x)` in forward order,
and a layer with parameters carries the same name. Summaries, feature-map plots and shape
checks read the "intermediates" collection, so they work for any model without special cases.
"""

from cnnlab import ops


def tap(module, name, x):
  """Record `x` as the output of layer `name` and pass it through.

  Flax forbids a variable named like a submodule ("Duplicate use of scope name: conv1"), so
  the taps share one ordered dict: `state["intermediates"]["taps"] == {"conv1": x, ...}`.
  """
  module.sow("intermediates", "taps", {name: x}, init_fn=dict,
             reduce_fn=lambda taps, new: {**taps, **new})
  return x


def max_pool(x, window=2, stride=None):
  """Max pooling over an NHWC batch (reshape+max when windows tile the image)."""
  return ops.pool_nhwc(x, window, stride, kind="max")


def avg_pool(x, window=2, stride=None):
  return ops.pool_nhwc(x, window, stride, kind="avg")
