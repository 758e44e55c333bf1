"""The course's PyTorch CNN with BatchNorm: conv(pad 1)-BN-pool, conv(no pad)-BN-pool, 600-120-10.

The dense head has no activations between its layers, as in the course (kept on purpose, so
numbers compare). BatchNorm uses PyTorch's defaults (momentum 0.1 there = 0.9 here, eps 1e-5).
"""

from typing import Any

import flax.linen as nn

from cnnlab.models.layers import Conv, Taps, relu_max_pool


class FashionCNNBN(nn.Module):
  num_classes: int = 10
  dropout: float = 0.25
  dtype: Any = None  # computation dtype (config.dtype); parameters stay float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    tap = Taps(name="taps")
    bn = lambda name: nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                                   dtype=self.dtype, name=name)
    x = bn("bn1")(Conv(32, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype, name="conv1")(x))
    tap("conv1", nn.relu(x))
    x = tap("pool1", relu_max_pool(x, 2))
    x = bn("bn2")(Conv(64, (3, 3), padding="VALID", dtype=self.dtype, name="conv2")(x))
    tap("conv2", nn.relu(x))
    x = tap("pool2", relu_max_pool(x, 2))
    x = tap("flatten", x.reshape((x.shape[0], -1)))
    x = tap("dense1", nn.Dense(600, dtype=self.dtype, name="dense1")(x))
    x = tap("dropout", nn.Dropout(self.dropout, deterministic=not train)(x))
    x = tap("dense2", nn.Dense(120, dtype=self.dtype, name="dense2")(x))
    return tap("output", nn.Dense(self.num_classes, dtype=self.dtype, name="output")(x))
