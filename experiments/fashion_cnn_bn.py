"""The course's PyTorch CNN with BatchNorm: Adam, batch 100, 5 epochs.

Run:     ./launch.sh train --config=experiments/fashion_cnn_bn.py --workdir=runs/fashion_cnn_bn
Expect:  test accuracy ~0.91.
"""

import ml_collections

from experiments import textbook


def get_config():
  c = textbook.get_config()
  c.model = ml_collections.ConfigDict({"name": "fashion_cnn_bn", "dropout": 0.25})
  c.batch_size = 100
  c.num_epochs = 5
  return c
