"""The course's main model (Keras and PyTorch versions): 333,526 parameters on 28x28x1."""

import flax.linen as nn

from cnnlab.models.layers import Taps, max_pool


class TextbookCNN(nn.Module):
  """Conv32-pool-Conv64-pool-Dense100-dropout-Dense10 (SPEC section 2)."""
  num_classes: int = 10
  dropout: float = 0.4  # Keras 0.4, PyTorch 0.3

  @nn.compact
  def __call__(self, x, train: bool = False):
    tap = Taps(name="taps")
    x = tap("conv1", nn.relu(nn.Conv(32, (3, 3), padding="SAME", name="conv1")(x)))
    x = tap("pool1", max_pool(x, 2))
    x = tap("conv2", nn.relu(nn.Conv(64, (3, 3), padding="SAME", name="conv2")(x)))
    x = tap("pool2", max_pool(x, 2))
    x = tap("flatten", x.reshape((x.shape[0], -1)))
    x = tap("dense1", nn.relu(nn.Dense(100, name="dense1")(x)))
    x = tap("dropout", nn.Dropout(self.dropout, deterministic=not train)(x))
    return tap("output", nn.Dense(self.num_classes, name="output")(x))
