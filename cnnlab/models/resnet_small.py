"""A small pre-activation ResNet (He et al. 2016, "Identity Mappings"): 3 stages, GAP head.

Each block is BN-ReLU-conv3x3-BN-ReLU-conv3x3 plus an identity shortcut; the first block of
stages 2 and 3 halves the size with stride 2 and projects the shortcut with a strided 1x1
conv of the pre-activated input (28 -> 28 -> 14 -> 7, 32 -> 32 -> 16 -> 8). Widths w, 2w, 4w.
Pre-activation keeps the shortcut path free of nonlinearities, which is why the stack ends
with its own BN-ReLU before pooling. Defaults (w=32, 1 block/stage): ~0.31M parameters.
Every layer is a top-level module named "s{stage}b{block}_{layer}" and tapped under that name.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnnlab.models import fast_conv
from cnnlab.models.layers import Taps


class ResNetSmall(nn.Module):
  num_classes: int = 10
  width: int = 32
  blocks_per_stage: int = 1
  bn_momentum: float = 0.9
  dtype: Any = None  # computation dtype (config.dtype); parameters stay float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    tap = Taps(name="taps")

    def bn_relu(x, name):
      x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                       dtype=self.dtype, name=name)(x)
      return tap(name, nn.relu(x))

    def conv(x, name, width, kernel=3, stride=1):
      return tap(name, nn.Conv(width, (kernel, kernel), (stride, stride), padding="SAME",
                               use_bias=False, dtype=self.dtype, name=name,
                               conv_general_dilated=fast_conv.flax_conv)(x))

    x = conv(x, "stem", self.width)
    for stage, width in enumerate((self.width, 2 * self.width, 4 * self.width), start=1):
      for block in range(1, self.blocks_per_stage + 1):
        name = f"s{stage}b{block}"
        stride = 2 if stage > 1 and block == 1 else 1
        pre = bn_relu(x, f"{name}_bn1")
        shortcut = x
        if stride != 1 or x.shape[-1] != width:
          shortcut = conv(pre, f"{name}_proj", width, kernel=1, stride=stride)
        y = conv(pre, f"{name}_conv1", width, stride=stride)
        y = conv(bn_relu(y, f"{name}_bn2"), f"{name}_conv2", width)
        x = tap(name, y + shortcut)
    x = bn_relu(x, "final_bn")
    x = tap("global_pool", jnp.mean(x, axis=(1, 2)))
    return tap("output", nn.Dense(self.num_classes, dtype=self.dtype, name="output")(x))
