"""The one place a dataset name is resolved: its shape, class names, sizes, and its splits.

  fashion_mnist, mnist, cifar10          registered: IDX files, else TFDS (registered.py)
  tfds:NAME[/CONFIG][:VERSION]           any TFDS image classification dataset (tfds_data.py)
  folder:PATH                            a directory of class subfolders (folder.py)

`info(config)` -> DatasetInfo(name, shape=(H, W, C), class_names, sizes={"train", "test"});
`source(config, split)` -> an object with `__len__`, `__getitem__(i) -> (uint8 (H, W, C), int
label)` already transformed to info's shape, and `arrays()` (the whole split, resident mode).
config.image_size > 0 makes every image S x S (transform.py); 0 keeps the dataset's own size.
The validation part of "train" is drawn later, by cnnlab.data.train_validation_split.
"""

import collections

import numpy as np

from cnnlab.errors import UserError
from cnnlab.input import folder, registered, tfds_data, transform

DatasetInfo = collections.namedtuple("DatasetInfo", "name shape class_names sizes")
SPLITS = ("train", "test")
# The data fields of a config, with their defaults for configs (and saved runs) that lack them.
Settings = collections.namedtuple(
    "Settings", "dataset data_dir image_size test_fraction split_seed skip_bad_images")
DEFAULTS = Settings("fashion_mnist", "", 0, 0.2, 42, False)


def settings(config):
  """The data fields of a config (or of a bare dataset name) as Settings."""
  if isinstance(config, str):
    return DEFAULTS._replace(dataset=config)
  return Settings(*(config.get(f, d) for f, d in zip(Settings._fields, DEFAULTS)))


def kind(name):
  """"folder", "tfds" or "registered": how a dataset name is read."""
  for prefix in ("folder", "tfds"):
    if str(name).startswith(prefix + ":"):
      return prefix
  return "registered"


def info(config):
  """DatasetInfo of a config's dataset (shape after config.image_size)."""
  s = settings(config)
  k, rest = kind(s.dataset), s.dataset.partition(":")[2]
  side = s.image_size
  if k == "folder":
    found = _scan(s)
    shape = (side, side, 1 if found.grey else 3) if side else folder.own_shape(found)
    sizes = {split: len(found.splits[split]) for split in SPLITS}
    return DatasetInfo(s.dataset, shape, found.class_names, sizes)
  if k == "tfds":
    feats = tfds_data.features(rest, s.data_dir)
    shape = ((side, side, tfds_data.channels(feats.shape)) if side
             else tfds_data.own_shape(rest, feats.shape))
    sizes = {split: len(_tfds_split(s, split)[0]) for split in SPLITS}
    return DatasetInfo(s.dataset, shape, feats.class_names, sizes)
  _, shape, names = registered.spec(s.dataset)
  sizes = {split: registered.num_examples(s.dataset, split, s.data_dir) for split in SPLITS}
  return DatasetInfo(s.dataset, (side, side, shape[-1]) if side else shape, names, sizes)


def source(config, split):
  """Split "train" or "test" of a config's dataset, transformed to info(config).shape."""
  if split not in SPLITS:
    raise UserError(f"unknown split {split!r}; choose 'train' or 'test'")
  s, shape = settings(config), info(config).shape
  k = kind(s.dataset)
  if k == "folder":
    found = _scan(s)
    return folder.FolderSource(found, found.splits[split], shape)
  if k == "tfds":
    indices, ds = _tfds_split(s, split)
    return tfds_data.TfdsSource(ds, indices, tfds_data.features(*_tfds_args(s)), shape)
  return ArraySource(*registered.load(s.dataset, split, s.data_dir or None), shape)


def _scan(s):
  return folder.scan(s.dataset.partition(":")[2], s.test_fraction, s.split_seed,
                     bool(s.skip_bad_images))


def _tfds_args(s):
  return s.dataset.partition(":")[2], s.data_dir


def _tfds_split(s, split):
  """(indices into the TFDS split or all of it, its data source) of our `split`."""
  name, indices = tfds_data.layout(*_tfds_args(s), s.test_fraction, s.split_seed)[split]
  ds = tfds_data.data_source(*_tfds_args(s), name)
  return (np.arange(len(ds)) if indices is None else indices), ds


class ArraySource:
  """uint8 arrays as a source; images of another shape pass through the one transform."""

  def __init__(self, images, labels, shape):
    self.images, self.labels, self.shape = images, labels, tuple(shape)

  def __len__(self):
    return len(self.images)

  def __getitem__(self, i):
    return transform.fit_array(self.images[i], self.shape), int(self.labels[i])

  def arrays(self):
    """(uint8 (N, H, W, C), int32 (N,)): the arrays themselves when already of the shape."""
    if self.images.shape[1:] == self.shape:
      return self.images, self.labels
    return (np.stack([transform.fit_array(x, self.shape) for x in self.images]),
            self.labels)
