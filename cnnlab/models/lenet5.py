"""LeNet-5 (LeCun et al. 1998) as published, and its modern ReLU/max-pool variant.

Layers keep the paper's names: C1 6@5x5 -> S2 pool -> C3 16@5x5 -> S4 pool -> C5 120@5x5
-> F6 84 -> output 10. Inputs smaller than 32x32 are zero-padded (centred) to 32x32, as
LeCun padded MNIST's 28x28 digits, so 28x28 and 32x32 inputs give the same network.

Simplifications, as in most re-implementations (and Keras' 61,706-parameter LeNet-5):
C3 is fully connected to S2's 6 maps (the paper's sparse table has 1,516 parameters, full
connectivity 2,416), S2/S4 are plain average pools (the paper's have a trainable coefficient
and bias per map), tanh is unscaled (paper: 1.7159 tanh(2x/3)), and the output is a dense
layer with softmax instead of Euclidean RBF units.
"""

import flax.linen as nn
import jax.numpy as jnp

from cnnlab.errors import UserError
from cnnlab.models.layers import Taps, avg_pool, max_pool

_ACTIVATIONS = {"tanh": jnp.tanh, "relu": nn.relu}
_POOLS = {"avg": avg_pool, "max": max_pool}


def _choose(table, value, field):
  if value not in table:
    raise UserError(f"model field {field}={value!r} is unknown; choose one of: "
                    f"{', '.join(table)}")
  return table[value]


class LeNet5(nn.Module):
  """The 1998 network: tanh and average pooling; 61,706 parameters on 1-channel input."""
  num_classes: int = 10
  activation: str = "tanh"
  pool: str = "avg"
  input_size: int = 32  # smaller inputs are zero-padded to this size (28 -> 32: pad 2)

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train  # no dropout or BatchNorm
    tap = Taps(name="taps")
    act = _choose(_ACTIVATIONS, self.activation, "activation")
    pool = _choose(_POOLS, self.pool, "pool")
    ph, pw = max(self.input_size - x.shape[1], 0), max(self.input_size - x.shape[2], 0)
    if ph or pw:
      x = tap("pad", jnp.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2),
                                 (0, 0))))
    x = tap("c1", act(nn.Conv(6, (5, 5), padding="VALID", name="c1")(x)))
    x = tap("s2", pool(x, 2))
    x = tap("c3", act(nn.Conv(16, (5, 5), padding="VALID", name="c3")(x)))
    x = tap("s4", pool(x, 2))
    # C5 is a 5x5 convolution over S4's 5x5 maps: a dense layer for 32x32 inputs.
    x = tap("c5", act(nn.Conv(120, (5, 5), padding="VALID", name="c5")(x)))
    x = tap("flatten", x.reshape((x.shape[0], -1)))
    x = tap("f6", act(nn.Dense(84, name="f6")(x)))
    return tap("output", nn.Dense(self.num_classes, name="output")(x))


class LeNet5ReLU(LeNet5):
  """The same layers with ReLU and max pooling: trains faster, same parameter count."""
  activation: str = "relu"
  pool: str = "max"
