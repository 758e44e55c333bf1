"""The speedrun CNN: blocks of conv -> 2x2 max pool -> BatchNorm -> ReLU, then dense layers.

Built for accuracy per second on a CPU (experiments/speedrun_*.py). The block order is
airbench's (conv, pool, norm, activation): BatchNorm and ReLU run on the pooled map, a
quarter of the conv output, and the per-image part of each block (conv + pool) runs in image
groups (layers.image_groups: cache locality on CPU, the same numbers) while BatchNorm sees
the whole batch. Convolutions have no bias (BatchNorm's shift replaces it).
"""

import functools
from typing import Any, Sequence

import flax.linen as nn

from cnnlab.models.layers import Conv, Taps, image_groups, max_pool


def conv_pool(x, conv, tap, name):
  """One image's conv and 2x2 max pool (the per-image half of a block)."""
  return max_pool(tap(name, conv(x)), 2)


class SpeedrunCNN(nn.Module):
  """conv(w)-pool-BN-ReLU for each width w, flatten, Dense(hidden)-ReLU, Dense(classes)."""
  num_classes: int = 10
  widths: Sequence[int] = (32, 64)
  hidden: int = 256
  dropout: float = 0.0
  bn_momentum: float = 0.9
  conv_groups: int = 8  # CPU: the conv + pool of each block in up to this many image groups
  dtype: Any = None  # computation dtype (config.dtype); parameters stay float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    tap = Taps(name="taps")
    for i, width in enumerate(self.widths, start=1):
      conv = Conv(width, (3, 3), padding="SAME", use_bias=False, dtype=self.dtype,
                  name=f"conv{i}")
      x = image_groups(functools.partial(conv_pool, name=f"conv{i}"), (conv, tap), x,
                       max_groups=self.conv_groups)
      x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                       dtype=self.dtype, name=f"bn{i}")(x)
      x = tap(f"block{i}", nn.relu(x))
    x = tap("flatten", x.reshape((x.shape[0], -1)))
    x = tap("dense1", nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name="dense1")(x)))
    x = tap("dropout", nn.Dropout(self.dropout, deterministic=not train)(x))
    return tap("output", nn.Dense(self.num_classes, dtype=self.dtype, name="output")(x))
