"""A small VGG-style net: 3 blocks of two 3x3 conv-BN-ReLU, widths w, 2w, 4w (default 32).

Blocks 1 and 2 end in a 2x2 max pool, block 3 in a global average pool (28 -> 14 -> 7 -> 1,
32 -> 16 -> 8 -> 1): pooling a 7x7 map by 2 would drop a row and take XLA's slow CPU
pooling gradient, and the average pool makes the head tiny (4w * classes weights), so the
~0.29M parameters sit in the convolutions. Convolutions have no bias: BatchNorm follows.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnnlab.models.layers import Conv, Taps, max_pool


class VGGSmall(nn.Module):
  num_classes: int = 10
  width: int = 32
  dropout: float = 0.3
  bn_momentum: float = 0.9
  dtype: Any = None  # computation dtype (config.dtype); parameters stay float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    tap = Taps(name="taps")
    for block, width in enumerate((self.width, 2 * self.width, 4 * self.width), start=1):
      for i in (1, 2):
        name = f"conv{block}_{i}"
        x = Conv(width, (3, 3), padding="SAME", use_bias=False, dtype=self.dtype, name=name)(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                         dtype=self.dtype, name=f"bn{block}_{i}")(x)
        x = tap(name, nn.relu(x))
      if block < 3:
        x = tap(f"pool{block}", max_pool(x, 2))
    x = tap("global_pool", jnp.mean(x, axis=(1, 2)))
    x = tap("dropout", nn.Dropout(self.dropout, deterministic=not train)(x))
    return tap("output", nn.Dense(self.num_classes, dtype=self.dtype, name="output")(x))
