"""Held-out parts drawn by a seed: the validation part of "train", a test split if none exists."""

import numpy as np


def holdout(num_examples, fraction, seed):
  """(kept indices, held-out indices): a permutation by `seed`, the first ceil(n * fraction)
  held out (as scikit-learn's train_test_split(test_size=fraction, random_state=seed))."""
  order = np.random.RandomState(seed).permutation(num_examples)
  num_out = int(np.ceil(num_examples * fraction))
  return order[num_out:], order[:num_out]


def drawn_test(num_examples, fraction, seed):
  """{"train": indices, "test": indices} of a dataset without a test split, each in the
  dataset's own order (so "test image 0" is the first held-out file)."""
  kept, held = holdout(num_examples, fraction, seed)
  return {"train": np.sort(kept), "test": np.sort(held)}
