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

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnnlab.errors import UserError
from cnnlab.models.layers import Conv, Taps, activation_pool, image_groups

_ACTIVATIONS = {"tanh": jnp.tanh, "relu": nn.relu}
_POOLS = {"avg": "avg", "max": "max"}  # field value -> pooling kind (pooling.pool_nhwc)


def _choose(table, value, field):
  if value not in table:
    raise UserError(f"model field {field}={value!r} is unknown; choose one of: "
                    f"{', '.join(table)}")
  return table[value]


def conv_stack(x, c1, c3, c5, tap, act, pool):
  """C1-S2-C3-S4-C5 of each image (C5 is a 5x5 conv over S4's 5x5 maps: dense for 32x32).

  activation_pool may apply the activation after the pool (ReLU + max: same numbers, less
  work), so the conv taps record act(y) beside it (dropped by XLA unless recorded).
  """
  for conv, name, pool_name in ((c1, "c1", "s2"), (c3, "c3", "s4")):
    y = conv(x)
    tap(name, act(y))
    x = tap(pool_name, activation_pool(y, act, pool, 2))
  return tap("c5", act(c5(x)))


class LeNet5(nn.Module):
  """The 1998 network: tanh and average pooling; 61,706 parameters on 1-channel input."""
  num_classes: int = 10
  activation: str = "tanh"
  pool: str = "avg"
  input_size: int = 32  # smaller inputs are zero-padded to this size (28 -> 32: pad 2)
  conv_groups: int = 8  # CPU: run C1..C5 in up to this many image groups (1 = off)
  dtype: Any = None  # computation dtype (config.dtype); parameters stay float32

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
    convs = [Conv(k, (5, 5), padding="VALID", dtype=self.dtype, name=name)
             for k, name in ((6, "c1"), (16, "c3"), (120, "c5"))]
    stack = functools.partial(conv_stack, act=act, pool=pool)
    x = image_groups(stack, (*convs, tap), x, max_groups=self.conv_groups)
    x = tap("flatten", x.reshape((x.shape[0], -1)))
    x = tap("f6", act(nn.Dense(84, dtype=self.dtype, name="f6")(x)))
    return tap("output", nn.Dense(self.num_classes, dtype=self.dtype, name="output")(x))


class LeNet5ReLU(LeNet5):
  """The same layers with ReLU and max pooling: trains faster, same parameter count."""
  activation: str = "relu"
  pool: str = "max"
