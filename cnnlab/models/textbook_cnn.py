"""The course's main model (Keras and PyTorch versions): 333,526 parameters on 28x28x1.

Initialised as Keras does (Glorot-uniform kernels, zero biases): the course's pictures of
untrained first-layer kernels (uniform in about +-0.14) and its training curves assume it.
"""

import functools
from typing import Any, Sequence

import flax.linen as nn

from cnnlab.models.layers import Conv, Taps, image_groups, relu_max_pool


GLOROT = nn.initializers.glorot_uniform()  # Keras' default


def conv_trunk(x, conv1, conv2, tap):
  """conv1-ReLU-pool1-conv2-ReLU-pool2 of each image, ReLU applied after the pool.

  relu_max_pool gives max_pool(relu(y)) for a quarter the ReLU work; the conv taps record
  relu(y) beside it (unused, and dropped by XLA, unless layer outputs are recorded).
  """
  for conv, name, pool in ((conv1, "conv1", "pool1"), (conv2, "conv2", "pool2")):
    y = conv(x)
    tap(name, nn.relu(y))
    x = tap(pool, relu_max_pool(y, 2))
  return x


class TextbookCNN(nn.Module):
  """Conv32-pool-Conv64-pool-Dense100-dropout-Dense10 (SPEC section 2)."""
  num_classes: int = 10
  dropout: float = 0.4  # Keras 0.4, PyTorch 0.3
  conv_groups: int = 16  # CPU: the conv trunk in groups of 8 images, up to this many (1 = off)
  widths: Sequence[int] = (32, 64)  # conv1, conv2 filters (the course's; variants may shrink)
  hidden: int = 100  # units of dense1
  dtype: Any = None  # computation dtype (config.dtype); parameters stay float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    tap = Taps(name="taps")
    conv = functools.partial(Conv, kernel_size=(3, 3), padding="SAME", kernel_init=GLOROT,
                             dtype=self.dtype)
    dense = functools.partial(nn.Dense, kernel_init=GLOROT, dtype=self.dtype)
    convs = conv(self.widths[0], name="conv1"), conv(self.widths[1], name="conv2")
    x = image_groups(conv_trunk, (*convs, tap), x, max_groups=self.conv_groups)
    x = tap("flatten", x.reshape((x.shape[0], -1)))
    x = tap("dense1", nn.relu(dense(self.hidden, name="dense1")(x)))
    x = tap("dropout", nn.Dropout(self.dropout, deterministic=not train)(x))
    return tap("output", dense(self.num_classes, name="output")(x))
