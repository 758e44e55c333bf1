"""A mini Inception net (Szegedy et al. 2014): parallel 1x1, 1x1->3x3 and pool->1x1 branches.

The 1x1 convolutions are the point: they mix channels at every pixel, cheaply reduce the
width before the 3x3 branch, and project the pooled branch, so a block sees several
receptive fields for fewer parameters than one wide 3x3 conv. Layout: stem conv3x3-BN-ReLU,
pool, inception block (4w channels out), pool, inception block (8w), global average pool,
dropout, dense (28 -> 14 -> 7 -> 1; 32 -> 16 -> 8 -> 1). Every conv is conv-BN-ReLU.
"""

import functools

import flax.linen as nn
import jax.numpy as jnp

from cnnlab.models.layers import Taps, max_pool


def max_pool_3x3_same(x):
  """3x3 stride-1 max pool with SAME padding as a max of 9 shifted views.

  Same numbers as reduce_window, but its gradient avoids XLA's slow CPU select_and_scatter.
  """
  h, w = x.shape[1], x.shape[2]
  p = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-jnp.inf)
  views = [p[:, i:i + h, j:j + w] for i in range(3) for j in range(3)]
  return functools.reduce(jnp.maximum, views)


class InceptionMini(nn.Module):
  num_classes: int = 10
  width: int = 16
  dropout: float = 0.3
  bn_momentum: float = 0.9

  @nn.compact
  def __call__(self, x, train: bool = False):
    tap = Taps(name="taps")

    def conv_bn(x, name, features, kernel):
      x = nn.Conv(features, (kernel, kernel), padding="SAME", use_bias=False, name=name)(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                       name=f"{name}_bn")(x)
      return tap(name, nn.relu(x))

    def inception(x, name, w):
      b1 = conv_bn(x, f"{name}_1x1", w, 1)
      b3 = conv_bn(conv_bn(x, f"{name}_3x3_reduce", w, 1), f"{name}_3x3", 2 * w, 3)
      bp = conv_bn(tap(f"{name}_pool", max_pool_3x3_same(x)), f"{name}_pool_proj", w, 1)
      return tap(name, jnp.concatenate([b1, b3, bp], axis=-1))

    x = conv_bn(x, "stem", 2 * self.width, 3)
    x = tap("pool1", max_pool(x, 2))
    x = inception(x, "inc1", self.width)
    x = tap("pool2", max_pool(x, 2))
    x = inception(x, "inc2", 2 * self.width)
    x = tap("global_pool", jnp.mean(x, axis=(1, 2)))
    x = tap("dropout", nn.Dropout(self.dropout, deterministic=not train)(x))
    return tap("output", nn.Dense(self.num_classes, name="output")(x))
