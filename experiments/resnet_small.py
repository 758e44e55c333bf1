"""The small pre-activation ResNet (~0.31M parameters): inception_mini.py's short BN recipe.

Run:     ./launch.sh train --config=experiments/resnet_small.py --workdir=runs/resnet_small
         Seeds 0-2 one after another (one row each in the sweep's results.md):
         ./launch.sh sweep --config=experiments/resnet_small.py --sweep=config.seed=0,1,2 \
             --workdir=runs/resnet_small_seeds
         Not --config.num_seeds=3 here: vmapping over seeds turns each conv into a grouped
         conv, which XLA:CPU runs far slower for this net (a 3-seed run had not finished its
         first epoch after 32 min; a probe took 6.2 s per step of 3 x 64 images while sharing
         the CPU, against ~0.4 s per 64 images for one seed alone).
Expect:  test 0.9133 +- 0.0010 over seeds 0-2 (0.9130, 0.9147, 0.9122; val 0.9191, 0.9186,
         0.9163; best epoch 2 of 2). Measured 2026-11-23: 804-937 s per seed, ~117 img/s
         (partly sharing the CPU). A training image costs ~220 MFLOP (~7x the course CNN):
         ~150 images/s alone on a 2-core CPU, so the default schedule is short.
"""

import ml_collections

from experiments import inception_mini


def get_config():
  c = inception_mini.get_config()  # one-cycle Adam 3e-3, label smoothing 0.1, no early stop
  c.model = ml_collections.ConfigDict({"name": "resnet_small", "width": 32})
  c.batch_size = 64  # ~2x faster per image than 128 here (XLA's kernel gradient, see docs)
  c.num_epochs = 2
  return c
