"""`tfds:NAME[/CONFIG][:VERSION]`: any TFDS image classification dataset, read by random access.

The image and label features are the builder's supervised keys (else its one Image and one
ClassLabel feature). Splits: TFDS's "test" split, else its "validation" split, else a test
split drawn from "train" by config.test_fraction and config.split_seed (tf_flowers has only
"train"). Data is read through `tfds.data_source` (ArrayRecord; no TensorFlow needed); a
dataset not yet prepared is downloaded only when the network answers at once.
"""

import collections
import functools

import numpy as np

from cnnlab.errors import UserError
from cnnlab.input import registered, splits, transform

Features = collections.namedtuple("Features", "image label shape class_names")
CATALOG = "https://www.tensorflow.org/datasets/catalog/overview"


def _tfds():
  import tensorflow_datasets as tfds
  return tfds


@functools.lru_cache(maxsize=8)
def builder(spec, data_dir=""):
  """The TFDS builder of `spec` (NAME[/CONFIG][:VERSION]); unknown names fail at once."""
  tfds = _tfds()
  if not spec:
    raise UserError("tfds: needs a dataset name, e.g. --config.dataset=tfds:cifar100")
  try:
    return tfds.builder(spec, data_dir=data_dir or None, file_format="array_record")
  except tfds.core.registered.DatasetNotFoundError:
    raise UserError(f"unknown TFDS dataset {spec!r}; see {CATALOG} for the names (check "
                    "the spelling: tfds:NAME[/CONFIG][:VERSION])") from None
  except (ValueError, AssertionError) as err:  # a bad config, version or name syntax
    raise UserError(f"TFDS cannot build {spec!r}: {' '.join(str(err).split())[:200]}") from None


def features(spec, data_dir=""):
  """Features(image key, label key, image shape (H, W, C) with None when sizes vary, names)."""
  tfds, b = _tfds(), builder(spec, data_dir)
  feats = b.info.features
  kinds = lambda kind: [k for k, f in feats.items() if isinstance(f, kind)]
  keys = b.info.supervised_keys
  if not (isinstance(keys, tuple) and len(keys) == 2 and keys[0] in kinds(tfds.features.Image)
          and keys[1] in kinds(tfds.features.ClassLabel)):
    images, labels = kinds(tfds.features.Image), kinds(tfds.features.ClassLabel)
    if not images:
      raise UserError(f"tfds:{spec} has no image feature (its features: "
                      f"{', '.join(feats.keys())}); cnnlab trains image classifiers: choose an "
                      f"image classification dataset ({CATALOG})")
    if not labels:
      raise UserError(f"tfds:{spec} has no class label feature (its features: "
                      f"{', '.join(feats.keys())}); choose an image classification dataset")
    keys = (images[0], labels[0])
  return Features(keys[0], keys[1], tuple(feats[keys[0]].shape), tuple(feats[keys[1]].names))


def split_names(b):
  """The splits TFDS knows for a builder (empty for one neither prepared nor described)."""
  return tuple(b.info.splits)


def layout(spec, data_dir, test_fraction, split_seed):
  """{"train"/"test": (TFDS split name, indices into it or None for all)}."""
  names = split_names(builder(spec, data_dir))
  held = next((s for s in ("test", "validation") if s in names), None)
  if held:
    return {"train": ("train", None), "test": (held, None)}
  drawn = splits.drawn_test(len(data_source(spec, data_dir, "train")), test_fraction, split_seed)
  return {"train": ("train", drawn["train"]), "test": ("train", drawn["test"])}


@functools.lru_cache(maxsize=16)
def data_source(spec, data_dir, split):
  """TFDS's random-access source of one split, preparing the dataset first if need be."""
  b = builder(spec, data_dir)
  try:
    return b.as_data_source(split=split)
  except Exception:  # not prepared (or not as ArrayRecord) here: prepare it, if online
    pass
  if not registered.network_reachable():
    raise UserError(f"tfds:{spec} is not prepared in {b.data_dir} and TFDS cannot download it "
                    "(offline); prepare it where there is network (tfds build "
                    f"{spec} --file_format=array_record) and pass --config.data_dir=DIR")
  try:
    b.download_and_prepare(file_format="array_record")
    return b.as_data_source(split=split)
  except Exception as err:  # TFDS raises many types; all mean "not available here"
    raise UserError(f"TFDS could not prepare tfds:{spec} "
                    f"({' '.join(str(err).split())[:200]})") from None


def own_shape(spec, shape):
  """(H, W, C) of a dataset whose images all have one size (config.image_size = 0)."""
  if None in shape[:2]:
    raise UserError(f"tfds:{spec} has images of varying sizes; set --config.image_size=N "
                    "(resize + centre crop to N x N, e.g. 64)")
  transform.check_size(max(shape[:2]), f"the image size of tfds:{spec} ({shape[1]}x{shape[0]})")
  return (shape[0], shape[1], channels(shape))


def channels(shape):
  return 1 if shape[-1] == 1 else 3


class TfdsSource:
  """One split of a TFDS dataset: item i -> (uint8 array of `shape`, label)."""

  def __init__(self, source, indices, feats, shape):
    self.source, self.feats, self.shape = source, feats, tuple(shape)
    self.indices = np.arange(len(source)) if indices is None else np.asarray(indices)

  def __len__(self):
    return len(self.indices)

  def __getitem__(self, i):
    record = self.source[int(self.indices[i])]
    image = np.asarray(record[self.feats.image])
    return transform.fit_array(image, self.shape), int(record[self.feats.label])

  def arrays(self):
    """The whole split: (uint8 (N, H, W, C), int32 (N,)), in order."""
    images = np.zeros((len(self), *self.shape), np.uint8)
    labels = np.zeros(len(self), np.int32)
    for i in range(len(self)):
      images[i], labels[i] = self[i]
    return images, labels
