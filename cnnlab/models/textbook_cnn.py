"""The course's main model (Keras and PyTorch versions): 333,526 parameters on 28x28x1.

Initialised as Keras does (Glorot-uniform kernels, zero biases): the course's pictures of
untrained first-layer kernels (uniform in about +-0.14) and its training curves assume it.
"""

import functools
from typing import Sequence

import flax.linen as nn
import jax

from cnnlab.models.layers import Conv, Taps, in_chunks, max_pool, relu_max_pool


GLOROT = nn.initializers.glorot_uniform()  # Keras' default


class TextbookCNN(nn.Module):
  """Conv32-pool-Conv64-pool-Dense100-dropout-Dense10 (SPEC section 2)."""
  num_classes: int = 10
  dropout: float = 0.4  # Keras 0.4, PyTorch 0.3
  conv_groups: int = 8  # CPU: run the conv trunk in up to this many image groups (1 = off)
  widths: Sequence[int] = (32, 64)  # conv1, conv2 filters (the course's; variants may shrink)
  hidden: int = 100  # units of dense1

  @nn.compact
  def __call__(self, x, train: bool = False):
    tap = Taps(name="taps")
    conv = functools.partial(Conv, kernel_size=(3, 3), padding="SAME", kernel_init=GLOROT)
    dense = functools.partial(nn.Dense, kernel_init=GLOROT)
    conv1, conv2 = conv(self.widths[0], name="conv1"), conv(self.widths[1], name="conv2")
    if self.is_mutable_collection("intermediates"):  # recording layer outputs: plain order
      x = tap("conv1", nn.relu(conv1(x)))
      x = tap("pool1", max_pool(x, 2))
      x = tap("conv2", nn.relu(conv2(x)))
      x = tap("pool2", max_pool(x, 2))
    elif self.conv_groups > 1 and not self.is_initializing():
      # Training/inference: the same numbers, faster on CPU (layers.py says why). One jitted
      # function serves every group, so JAX traces, differentiates and lowers the trunk once
      # instead of once per group. XLA inlines the calls: same fusions, same numbers, same speed.
      unbound = conv1.clone(parent=None), conv2.clone(parent=None)
      params = conv1.variables["params"], conv2.variables["params"]

      @jax.jit
      def trunk(params, x):
        (c1, c2), (p1, p2) = unbound, params
        return relu_max_pool(c2.apply({"params": p2}, relu_max_pool(c1.apply({"params": p1}, x))))

      x = in_chunks(functools.partial(trunk, params), x, max_chunks=self.conv_groups)
    else:
      x = relu_max_pool(conv2(relu_max_pool(conv1(x))))
    x = tap("flatten", x.reshape((x.shape[0], -1)))
    x = tap("dense1", nn.relu(dense(self.hidden, name="dense1")(x)))
    x = tap("dropout", nn.Dropout(self.dropout, deterministic=not train)(x))
    return tap("output", dense(self.num_classes, name="output")(x))
