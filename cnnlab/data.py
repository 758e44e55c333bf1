"""The resident input mode: whole splits as uint8 arrays, and what a run's dataset is.

A dataset is named three ways (cnnlab.input.sources resolves the name): a registered name
(fashion_mnist, mnist, cifar10), tfds:NAME[/CONFIG][:VERSION] or folder:PATH. Images stay
uint8 (N, H, W, C) until they are on the device; the training step scales them to [0, 1]
itself, so the host never holds a float copy and transfers are 4x smaller. The test split is
only read when asked for (train.py asks once, at the very end).

Functions here take a config, or a bare dataset name for a dataset's defaults (image_size 0).
"""

import hashlib
import os

import numpy as np

from cnnlab.errors import UserError
from cnnlab.input import arrays, cache, modes, registered, sources, splits, tfds_data

LANGUAGES = ("en", "ko")  # class names: English, or the course's Korean (Fashion-MNIST)


def info(config):
  """DatasetInfo(name, shape, class_names, sizes) of a config's (or a name's) dataset."""
  return sources.info(config)


def class_names(config, lang="en"):
  """The class names of a config's dataset; lang="ko": the course's Korean for Fashion-MNIST."""
  if lang not in LANGUAGES:
    raise UserError(f"unknown --lang={lang!r}; choose en or ko")
  name = sources.settings(config).dataset
  if sources.kind(name) == "registered":
    return registered.class_names(name, lang)
  return info(config).class_names


def image_shape(config):
  return info(config).shape


def num_classes(config):
  return len(info(config).class_names)


def is_registered(config):
  """True for fashion_mnist, mnist and cifar10 (the course's data, IDX files)."""
  return sources.kind(sources.settings(config).dataset) == "registered"


def load_split(config, split, data_dir=None):
  """One split ("train" or "test") as (uint8 NHWC images, int32 labels), transformed to
  image_shape(config). `data_dir` (if given) replaces the config's."""
  if data_dir:
    config = sources.settings(config)._replace(data_dir=data_dir)._asdict()
  return sources.source(config, split).arrays()


def train_validation_split(num_examples, validation_fraction, seed):
  """Deterministic (train_indices, validation_indices) by `seed`.

  The same split as scikit-learn's `train_test_split(test_size=f, random_state=seed)`, which
  the course used (seed 42): so "validation image 0" means the same picture as in the course.
  """
  return splits.holdout(num_examples, validation_fraction, seed)


def load_train_validation(config):
  """The training and validation arrays a config asks for (the test split is not touched).

  Returns dict(train=(images, labels), validation=(images, labels)); `config.train_size` /
  `config.validation_size` (0 = all) take the first examples of each part, for quick runs.
  """
  images, labels = load_split(config, "train")
  train_idx, val_idx = _split_indices(config, len(images))
  return {"train": (images[train_idx], labels[train_idx]),
          "validation": (images[val_idx], labels[val_idx])}


def train_validation_inputs(config, num_seeds=1):
  """dict(train=..., validation=(images, labels)) with the training part as the mode needs it.

  The mode is decided from info(config) before anything is decoded (input.modes.decide). In
  stream mode the training part is a source (the same indices as load_train_validation, read
  example by example), so the whole split is never decoded; resident: load_train_validation.
  """
  found = info(config)
  train_idx, val_idx = _split_indices(config, found.sizes["train"])
  example_bytes = int(np.prod(found.shape))  # uint8
  if (modes.decide(config, len(train_idx), example_bytes, num_seeds) != "stream"
      or is_registered(config)):  # registered datasets are read whole as arrays anyway
    return load_train_validation(config)
  whole = _cached(config, sources.source(config, "train"))
  return {"train": arrays.Part(whole, train_idx),
          "validation": arrays.as_arrays(arrays.Part(whole, val_idx))}


def first_images(train, count):
  """The first `count` training images (uint8), of arrays or a source, in order."""
  if isinstance(train, tuple):
    return train[0][:count]
  return arrays.as_arrays(arrays.Part(train, np.arange(min(count, len(train)))))[0]


def _cached(config, whole):
  """`whole` (the training split) decoded once to disk when config.input_cache says so
  (folder: and tfds: datasets; registered ones are arrays already)."""
  setting, s = config.get("input_cache", ""), sources.settings(config)
  if not setting or sources.kind(s.dataset) == "registered":
    return whole
  key = "|".join((s.dataset, str(s.image_size), "train", _fingerprint(s, whole)))
  root = None if setting == "auto" else setting
  return cache.cached(whole, cache.directory_for(key, root), key)


def _fingerprint(s, whole):
  """A digest that changes when the data does: a folder's files (names, sizes, mtimes), or a
  TFDS dataset's name and version, with the split's indices."""
  digest = hashlib.sha256()
  if sources.kind(s.dataset) == "folder":
    for path in whole.paths:
      st = os.stat(path)
      digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
  else:
    b = tfds_data.builder(s.dataset.partition(":")[2], s.data_dir)
    digest.update(f"{b.name}:{b.version}".encode())
  digest.update(np.asarray(whole.labels if hasattr(whole, "paths") else whole.indices,
                           np.int64).tobytes())
  return digest.hexdigest()[:16]


def _split_indices(config, num_examples):
  train_idx, val_idx = train_validation_split(num_examples, config.validation_fraction,
                                              config.split_seed)
  if config.train_size:
    train_idx = train_idx[:config.train_size]
  if config.validation_size:
    val_idx = val_idx[:config.validation_size]
  return train_idx, val_idx


def load_test(config):
  """The test split (config.test_size > 0 takes its first examples, for quick runs only)."""
  images, labels = load_split(config, "test")
  if config.test_size:
    images, labels = images[:config.test_size], labels[:config.test_size]
  return images, labels
