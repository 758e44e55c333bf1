"""The course's fully connected baseline (784-256-128-10).

The course's forward pass skipped the 128 layer by mistake; this is the intended network.
"""

from typing import Any

import flax.linen as nn

from cnnlab.models.layers import Taps


class FashionDNN(nn.Module):
  num_classes: int = 10
  dropout: float = 0.25
  dtype: Any = None  # computation dtype (config.dtype); parameters stay float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    tap = Taps(name="taps")
    x = tap("flatten", x.reshape((x.shape[0], -1)))
    x = tap("dense1", nn.relu(nn.Dense(256, dtype=self.dtype, name="dense1")(x)))
    x = tap("dropout", nn.Dropout(self.dropout, deterministic=not train)(x))
    x = tap("dense2", nn.relu(nn.Dense(128, dtype=self.dtype, name="dense2")(x)))
    return tap("output", nn.Dense(self.num_classes, dtype=self.dtype, name="output")(x))
