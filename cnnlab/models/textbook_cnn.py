"""The course's main model (Keras and PyTorch versions): 333,526 parameters on 28x28x1.

Initialised as Keras does (Glorot-uniform kernels, zero biases): the course's pictures of
untrained first-layer kernels (uniform in about +-0.14) and its training curves assume it.
"""

import functools
from typing import Sequence

import flax.linen as nn

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
    else:  # training/inference: the same numbers, faster on CPU (layers.py says why)
      trunk = lambda x: relu_max_pool(conv2(relu_max_pool(conv1(x))))
      x = in_chunks(trunk, x, max_chunks=self.conv_groups) if self.conv_groups > 1 else trunk(x)
    x = tap("flatten", x.reshape((x.shape[0], -1)))
    x = tap("dense1", nn.relu(dense(self.hidden, name="dense1")(x)))
    x = tap("dropout", nn.Dropout(self.dropout, deterministic=not train)(x))
    return tap("output", dense(self.num_classes, name="output")(x))
