"""Speedrun to 0.91 test accuracy on a 2-core CPU: speedrun_cnn at widths (18, 32) with a frozen
whitening conv1 (kernel and bias), one-cycle Adam at batch 128, ONE epoch of the first 50,000
training images.

Run:     ./launch.sh speedrun --config=experiments/speedrun_91.py   (seeds 0, 1, 2, each a fresh
         process with an empty compilation cache; stops at the first epoch past 20 s)
Expect:  every seed after epoch 1: 21.4 +- 1.1 s, not within the 20 s limit (test 0.9160 /
         0.9139 / 0.9144; bench/results/speedrun-0.91-2026-12-03b-2core.json).
         How the recipe was chosen: docs/performance.md.
"""

import ml_collections

from experiments import fast


def get_config():
  c = fast.get_config()
  c.model = ml_collections.ConfigDict({"name": "speedrun_cnn", "widths": (18, 32),
                                       "hidden": 512, "conv_groups": 8, "whiten_eps": 1e-2,
                                       "whiten_bias": False})
  c.optimizer.learning_rate = 2e-2
  c.optimizer.b1 = 0.8
  c.batch_size = 128
  c.num_epochs = 1
  c.speedrun = ml_collections.ConfigDict({"target": 0.91, "time_limit_s": 20.0,
                                          "train_images": 50_000})
  return c
