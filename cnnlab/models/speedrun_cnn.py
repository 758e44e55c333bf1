"""The speedrun CNN: a per-image conv trunk, then BatchNorm where it is cheap, then dense layers.

Built for accuracy per second on a CPU (experiments/speedrun_*.py). Every conv but the last is
conv -> ReLU -> 2x2 max pool; the last is conv -> 2x2 max pool, and BatchNorm -> ReLU run on
its pooled output (a quarter of the conv output, the smallest map); Dense(hidden) -> BatchNorm
-> ReLU follows, then the classifier. The whole trunk runs in image groups (layers.image_groups:
cache locality on CPU, the same numbers) while both BatchNorms see the whole batch.

Why BatchNorm only there: it bought the most accuracy per second of the placements tried, and
BatchNorm after every conv would split the trunk into one image-group program per block
(the ablation: docs/performance.md, "Where speedrun_cnn's BatchNorm goes").
With `whiten_eps` > 0, conv1 is airbench's frozen patch-whitening layer (whitening.py): its
filters are +- the principal components of the training images' 3x3 patches, set from the
data when a run starts (`init_from_data`, called by train.state.build) and never trained (its
bias trains). conv1's width must then be even and at most 18 (config.check says so).
BatchNorm layers are named after the weight layer they follow (bn2 after conv2, bn3 after
dense1, the third weight layer); the conv and dense they follow have no bias (BatchNorm's
shift replaces it).
"""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnnlab.models import whitening
from cnnlab.models.layers import Conv, Taps, image_groups, max_pool, relu_max_pool


def conv_trunk(x, *layers):
  """One image's convs: conv-ReLU-pool for all but the last, conv-pool for the last."""
  *convs, tap = layers
  for i, conv in enumerate(convs, start=1):
    y = conv(x)
    last = i == len(convs)
    tap(f"conv{i}", y if last else nn.relu(y))
    x = tap(f"pool{i}", max_pool(y, 2) if last else relu_max_pool(y, 2))
  return x


class SpeedrunCNN(nn.Module):
  """convs (per image) -> BatchNorm-ReLU -> Dense(hidden)-BatchNorm-ReLU -> Dense(classes)."""
  num_classes: int = 10
  widths: Sequence[int] = (16, 32)
  hidden: int = 512
  dropout: float = 0.0
  bn_momentum: float = 0.9
  conv_groups: int = 8  # CPU: the conv trunk in up to this many image groups (1 = off)
  whiten_eps: float = 0.0  # > 0: conv1 holds frozen patch-whitening filters (whitening.py)
  whiten_bias: bool = True  # whitening: train conv1's bias (False: frozen too, a cheaper step)
  dtype: Any = None  # computation dtype (config.dtype); parameters stay float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    tap = Taps(name="taps")
    k = len(self.widths)
    convs = [Conv(w, (3, 3), padding="SAME", use_bias=i < k, dtype=self.dtype, name=f"conv{i}",
                  freeze_kernel=i == 1 and self.whiten_eps > 0,
                  freeze_bias=i == 1 and self.whiten_eps > 0 and not self.whiten_bias)
             for i, w in enumerate(self.widths, start=1)]
    x = image_groups(conv_trunk, (*convs, tap), x, max_groups=self.conv_groups)
    norm = lambda name: nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                                     dtype=self.dtype, name=name)
    x = tap(f"bn{k}", nn.relu(norm(f"bn{k}")(x)))
    x = tap("flatten", x.reshape((x.shape[0], -1)))
    x = nn.Dense(self.hidden, use_bias=False, dtype=self.dtype, name="dense1")(x)
    x = tap("dense1", nn.relu(norm(f"bn{k + 1}")(x)))
    x = tap("dropout", nn.Dropout(self.dropout, deterministic=not train)(x))
    return tap("output", nn.Dense(self.num_classes, dtype=self.dtype, name="output")(x))

  def init_from_data(self, params, images):
    """`params` with conv1 set to the whitening filters of the training `images` (whiten_eps > 0;
    else unchanged). Stacked params (one per seed, leading axis) all get the same filters."""
    if not self.whiten_eps:
      return params
    kernel, bias = whitening.whitening_filters(images, self.widths[0], eps=self.whiten_eps)
    fill = lambda new, old: jnp.broadcast_to(jnp.asarray(new, old.dtype), old.shape)
    conv1 = jax.tree.map(fill, {"kernel": kernel, "bias": bias}, dict(params["conv1"]))
    return {**params, "conv1": conv1}
