"""Speedrun to 0.94 test accuracy on a 2-core CPU: speedrun_93's recipe at widths (24, 48) with
conv1 learned (the whitening conv1 holds at most 18 filters), the one-cycle over 20 epochs.

Run:     ./launch.sh speedrun --config=experiments/speedrun_94.py   (seeds 0, 1, 2; 15-minute limit)
Expect:  every seed within the limit: 610.4 +- 53.8 s after epochs 15 / 17 / 16 (test 0.9405 /
         0.9424 / 0.9413; bench/results/speedrun-0.94-*-2026-12-02-2core.json). How the recipe
         was chosen: docs/performance.md.
"""

from experiments import speedrun_93

NUM_EPOCHS = 12


def get_config():
  c = speedrun_93.get_config()
  c.model.update(widths=(18, 48))  # the whitened conv1 of speedrun_93, a 1.5x wider conv2
  c.num_epochs = NUM_EPOCHS
  c.speedrun.update(target=0.94, time_limit_s=480.0)
  return c
