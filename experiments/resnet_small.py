r"""The small pre-activation ResNet (~0.31M parameters): inception_mini.py's short BN recipe.
Seeds run one after another, not as --config.num_seeds=3: vmapped seeds make each conv a
grouped conv, which XLA:CPU runs far slower for this net.

Run:     ./launch.sh sweep --config=experiments/resnet_small.py --sweep=config.seed=0,1,2 \
             --workdir=runs/resnet_small_seeds
Expect:  test 0.9133 +- 0.0010 over seeds 0-2, 804-937 s per seed (docs/results.md).
"""

import ml_collections

from experiments import inception_mini


def get_config():
  c = inception_mini.get_config()  # one-cycle Adam 3e-3, label smoothing 0.1, no early stop
  c.model = ml_collections.ConfigDict({"name": "resnet_small", "width": 32})
  c.batch_size = 64  # ~2x faster per image than 128 here (XLA's kernel gradient, see docs)
  c.num_epochs = 2
  return c
