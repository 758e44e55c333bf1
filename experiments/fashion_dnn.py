"""The course's fully connected baseline (784-256-128-10, dropout 0.25).

Run:     ./launch.sh train --config=experiments/fashion_dnn.py --workdir=runs/fashion_dnn
Expect:  test accuracy ~0.88-0.89.
"""

import ml_collections

from experiments import textbook


def get_config():
  c = textbook.get_config()
  c.model = ml_collections.ConfigDict({"name": "fashion_dnn", "dropout": 0.25})
  return c
