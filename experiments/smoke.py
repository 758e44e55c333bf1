"""A tiny run of the textbook CNN for tests: 2,048 training images, 2 epochs, seconds on a CPU.

Run:     ./launch.sh train --config=experiments/smoke.py --workdir=runs/smoke
Expect:  test accuracy ~0.7 on the first 1,000 test images (a plumbing check, not a result).
"""

from experiments import textbook


def get_config():
  c = textbook.get_config()
  c.train_size = 2048
  c.validation_size = 512
  c.test_size = 1000
  c.num_epochs = 2
  c.eval_batch_size = 256
  c.model.conv_groups = 1  # compile in ~4 s instead of ~10 s: tests train this config often
  return c
