"""LeNet-5 (LeCun et al. 1998) on MNIST, the dataset it was designed for: tanh, average pools.

Run:     ./launch.sh train --config=experiments/lenet5.py --workdir=runs/lenet5
Expect:  test accuracy ~0.99 (the paper: 0.95% error without distortions); expected, not yet
         measured (MNIST's IDX files are not installed on the dev machine: this run needs
         /usr/share/datasets/mnist, --data_dir=DIR, or network access for TFDS).
Cost:    61,706 parameters and ~0.4M multiply-adds per image (28x28 padded to 32x32): a
         128-image training step took 87 ms with the machine shared (load ~7 on 2 cores),
         so 10 epochs of 48,000 images take ~6 minutes there, less on an idle machine.
Why:     Adam replaces the paper's per-parameter stochastic diagonal Levenberg-Marquardt;
         no augmentation (no flips: digits are not mirror-symmetric) to stay close to the paper.
         `--config.model.name=lenet5_relu` gives the modern ReLU/max-pool variant.
"""

import ml_collections

from experiments import textbook


def get_config():
  c = textbook.get_config()
  c.dataset = "mnist"
  c.model = ml_collections.ConfigDict({"name": "lenet5", "activation": "tanh", "pool": "avg"})
  c.optimizer.learning_rate = 1e-3
  c.optimizer.schedule = "cosine"
  c.batch_size = 128
  c.num_epochs = 10
  c.early_stopping_patience = 0  # the cosine schedule runs to the end; the best epoch is kept
  return c
