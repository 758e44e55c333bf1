"""Speedrun to 0.93 test accuracy on a 2-core CPU: speedrun_91's whitened network, flips, shifts.

Run:     ./launch.sh bench --time-to-accuracy=0.93   (picks this file; seeds 0, 1, 2, each a
         fresh process with an empty compilation cache; test set checked after every epoch;
         a seed's run stops at the first epoch ending past the 3-minute limit)
Expect:  0.93 reached by every seed within 3 minutes: 112.4 +- 14.4 s (100.0 / 128.2 / 109.0 s
         for seeds 0 / 1 / 2, after epochs 4 / 5 / 4; test 0.9309 / 0.9325 / 0.9320;
         bench/results/speedrun-0.93-2026-12-02b-2core.json). Seed 0 by epoch: 0.8760, 0.9033,
         0.9221, 0.9309 at 29, 52, 76, 100 s (~24 s per epoch of 60,000 images with flips,
         shifts and flip TTA). The same recipe without whitening (conv1 learned, widths 16/32)
         reached none: 0.9297 / 0.9282 / 0.9253 after 5 epochs at 156-162 s on a slower day
         (bench/results/speedrun-0.93-2026-12-02-2core.json; after epoch 4: 0.9218 / 0.9223 /
         0.9212).
Recipe:  experiments/speedrun_91.py (speedrun_cnn at widths (18, 32) with conv1 frozen patch
         whitening, dense 512, one-cycle Adam peak 1e-2, b1 0.8, b2 0.99, label smoothing 0.1,
         batch 64) with random flips and 1-pixel shifts, flip test-time augmentation, and the
         one-cycle over 5 epochs.
Chosen:  on the validation split (48,000 images; validation accuracy after 5 epochs, seed 0
         unless said). Without whitening (widths 16/32): 0.9340 (by epoch 0.868, 0.844, 0.882,
         0.930, 0.934; seed 1: 0.9334); 6 epochs 0.934; 2-pixel shifts, 6 epochs 0.929; widths
         (24, 48) 0.931 (too slow: 170 s on 48,000 images); a third conv (16/32/64), 4 epochs
         0.928. airbench's playbook on that recipe (docs/performance.md has the table): label
         smoothing 0.2 0.9333, BatchNorm momentum 0.6 0.9333, peak lr 2e-2 / 5e-3 0.9314 /
         0.9330, Nesterov SGD 0.9287, 4x lr for BatchNorm biases 0.9317, identity init of
         conv2 0.9331, alternating flips 0.9339, weight EMA 0.9325-0.9337, multi-view TTA
         0.9352 (seed 1: 0.9367; +4 s per test evaluation). Frozen patch whitening, widths
         (18, 32), eps 1e-2: **0.9357 / 0.9358 (seeds 0 / 1)**, by epoch 0.857, 0.875, 0.922,
         0.933, 0.936 (a prototype: 0.9383); trainable whitening init 0.9363; eps 3e-2 0.9338;
         16 filters (+-8 components) 0.9348; 4 epochs 0.9333.
"""

from experiments import speedrun_91

NUM_EPOCHS = 5


def get_config():
  c = speedrun_91.get_config()
  c.augment.update(crop_padding=1, flip=True)
  c.eval_flip_tta = True
  c.num_epochs = NUM_EPOCHS
  return c
