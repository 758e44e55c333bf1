"""Speedrun to 0.93 test accuracy on a 2-core CPU: a BatchNorm CNN with flips, shifts and TTA.

Run:     ./launch.sh bench --time-to-accuracy=0.93   (picks this file; seeds 0, 1, 2, each a
         fresh process with an empty compilation cache; test set checked after every epoch)
Expect:  NOT reached. Seed 0, cold process (bench/results/speedrun-0.93-seed0-2026-12-01-2core.json):
         test 0.8721 / 0.8808 / 0.8951 / 0.8916 / 0.9001 / 0.9141 / 0.9200 / 0.9184 / 0.9224 /
         0.9241 after epochs 1-10, at 60 / 112 / 160 / 209 / 258 / 303 / 348 / 394 / 442 / 490 s
         (~1,300 img/s: BatchNorm's batch reductions cost ~25% per image on XLA:CPU, and the
         full-width conv2 is 4x fast.py's). At 3 minutes it stands at ~0.89; 0.93 needs a
         network that learns more per second than this one and fast.py's.
Recipe:  speedrun_cnn (conv-pool-BatchNorm-ReLU at widths 32, 64; Dense 256), one-cycle Adam
         (peak 1e-2, b2 0.99), label smoothing 0.1, batch 64, random flips and 2-pixel shifts,
         flip test-time augmentation, NUM_EPOCHS epochs. Chosen on the validation split:
         6 epochs of 48k reached 0.9252 (seed 0; 0.8793 after epoch 1, the one-cycle peak
         makes the middle epochs noisy: 0.849, 0.862, 0.909, 0.919, 0.925).
"""

import ml_collections

from experiments import fast

NUM_EPOCHS = 10


def get_config():
  c = fast.get_config()
  c.model = ml_collections.ConfigDict({"name": "speedrun_cnn", "widths": (32, 64),
                                       "hidden": 256})
  c.optimizer.learning_rate = 1e-2
  c.augment = ml_collections.ConfigDict({"crop_padding": 2, "flip": True, "erase_prob": 0.0})
  c.eval_flip_tta = True
  c.num_epochs = NUM_EPOCHS
  return c
