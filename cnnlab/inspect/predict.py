"""Classify pictures or dataset images with a trained run: probabilities and top classes."""

import numpy as np

from cnnlab import rundir
from cnnlab.errors import UserError
from cnnlab.inspect import inputs
from cnnlab.data import class_names
from cnnlab.inspect.restore import load_run
from cnnlab.train.evaluate import probabilities


def top_k(probs, names, k=3):
  """[(name, probability), ...] of the k most probable classes of one image, best first."""
  probs = np.asarray(probs).reshape(-1)
  return [(names[i], float(probs[i])) for i in np.argsort(-probs)[:k]]


def predict_split(state, images, batch_size=1000):
  """(probabilities (N, classes), predicted class (N,)) of a whole split."""
  probs = probabilities(state, images, batch_size)
  return probs, probs.argmax(-1)


def classify(workdir, image=None, index=None, split="validation", which="best", invert="auto",
             lang="en", data_dir=None):
  """(probabilities (classes,), class names, input (1,H,W,C) uint8, description, label)."""
  if (image is None) == (index is None):
    raise UserError("pass --image=FILE (a picture) or --index=N (a dataset image), one of them")
  saved = rundir.Run(workdir).read_config()
  names = class_names(saved, lang)
  if image is not None:  # check the picture before the (seconds-long) restore
    x, inverted = inputs.load_image(image, saved, invert)
    what, label = image + (" (light background: inverted)" if inverted else ""), None
  else:  # likewise the index
    x, label = inputs.pick(*inputs.dataset_images(saved, split, data_dir), index, split)
    what = f"{split} image {index} (label: {names[label]})"
  _, _, state, _ = load_run(workdir, which)
  probs = probabilities(state, x)[0]
  return probs, names, x, what, label
