"""A mini Inception net (Szegedy et al. 2014): parallel 1x1, 1x1->3x3 and pool->1x1 branches.

The 1x1 convolutions are the point: they mix channels at every pixel, cheaply reduce the
width before the 3x3 branch, and project the pooled branch, so a block sees several
receptive fields for fewer parameters than one wide 3x3 conv. Layout: stem conv3x3-BN-ReLU,
pool, inception block (4w channels out), pool, inception block (8w), global average pool,
dropout, dense (28 -> 14 -> 7 -> 1; 32 -> 16 -> 8 -> 1). Every conv is conv-BN-ReLU.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnnlab.models import fast_conv
from cnnlab.models.layers import Taps, max_pool


class InceptionMini(nn.Module):
  num_classes: int = 10
  width: int = 16
  dropout: float = 0.3
  bn_momentum: float = 0.9
  dtype: Any = None  # computation dtype (config.dtype); parameters stay float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    tap = Taps(name="taps")

    def conv_bn(x, name, features, kernel):
      x = nn.Conv(features, (kernel, kernel), padding="SAME", use_bias=False, dtype=self.dtype,
                  name=name, conv_general_dilated=fast_conv.flax_conv)(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                       dtype=self.dtype, name=f"{name}_bn")(x)
      return tap(name, nn.relu(x))

    def inception(x, name, w):
      b1 = conv_bn(x, f"{name}_1x1", w, 1)
      b3 = conv_bn(conv_bn(x, f"{name}_3x3_reduce", w, 1), f"{name}_3x3", 2 * w, 3)
      pooled = max_pool(x, 3, stride=1, padding="SAME")  # shifted views: fast gradient
      bp = conv_bn(tap(f"{name}_pool", pooled), f"{name}_pool_proj", w, 1)
      return tap(name, jnp.concatenate([b1, b3, bp], axis=-1))

    x = conv_bn(x, "stem", 2 * self.width, 3)
    x = tap("pool1", max_pool(x, 2))
    x = inception(x, "inc1", self.width)
    x = tap("pool2", max_pool(x, 2))
    x = inception(x, "inc2", 2 * self.width)
    x = tap("global_pool", jnp.mean(x, axis=(1, 2)))
    x = tap("dropout", nn.Dropout(self.dropout, deterministic=not train)(x))
    return tap("output", nn.Dense(self.num_classes, dtype=self.dtype, name="output")(x))
