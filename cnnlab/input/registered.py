"""The registered datasets (fashion_mnist, mnist, cifar10): local IDX files, else their canonical
downloads, else TFDS.

Images stay uint8 (N, H, W, C) until they are on the device; the training step scales them
to [0, 1] itself, so the host never holds a float copy and transfers are 4x smaller.
"""

import gzip
import os
import socket
import struct

import numpy as np

from cnnlab import download
from cnnlab.errors import UserError, closest

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")
FASHION_MNIST_CLASSES_KO = ("티셔츠", "바지", "스웨터", "드레스", "코트", "샌달", "셔츠",
                            "스니커즈", "가방", "앵클 부츠")

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")

# name -> (default local directory of IDX files, image shape, class names); TFDS otherwise.
# Adding a dataset is adding a line here: shapes and class counts everywhere come from it.
DATASETS = {
    "fashion_mnist": ("/usr/share/datasets/fashion-mnist", (28, 28, 1), FASHION_MNIST_CLASSES),
    "mnist": ("/usr/share/datasets/mnist", (28, 28, 1), tuple(str(i) for i in range(10))),
    "cifar10": ("/usr/share/datasets/cifar10", (32, 32, 3), CIFAR10_CLASSES),
}
IDX_PREFIX = {"train": "train", "test": "t10k"}
_IDX_DTYPES = {0x08: np.uint8}
_IDX_MAGIC = {"images": 0x0803, "labels": 0x0801}
# Examples per split where no local files say otherwise (TFDS's counts).
SIZES = {"fashion_mnist": {"train": 60000, "test": 10000}, "mnist": {"train": 60000, "test": 10000},
         "cifar10": {"train": 50000, "test": 10000}}


def spec(name):
  """(default directory, image shape, class names) of a registered dataset."""
  if name not in DATASETS:
    raise UserError(f"unknown dataset {name!r}{closest(name, DATASETS)}; choose one of: "
                    f"{', '.join(DATASETS)}, tfds:NAME (any TFDS image dataset) or "
                    "folder:PATH (a directory of class subfolders)")
  return DATASETS[name]


def class_names(name, lang="en"):
  if lang == "ko" and name == "fashion_mnist":
    return FASHION_MNIST_CLASSES_KO
  return spec(name)[2]


def num_examples(name, split, data_dir=None):
  """Examples in a split: from the IDX header when the files are local, else TFDS's count."""
  path = _idx_path(data_dir or spec(name)[0], split, "images")
  if path is None and not data_dir and download.available(name):
    path = _idx_path(download.cache_dir(name), split, "images")
  if path is None:
    return SIZES.get(name, {}).get(split, 0)  # 0: not known before the files are read
  try:
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
      head = f.read(8)
  except (OSError, EOFError):
    return 0  # unreadable: reading the split names the problem
  return struct.unpack(">I", head[4:8])[0] if len(head) == 8 else 0


def read_idx(path, kind):
  """Read an IDX file (optionally gzipped), checking the magic number and the size.

  `kind` is "images" (3-d ubyte) or "labels" (1-d ubyte). Errors are UserErrors naming the
  file and what is wrong with it, so a truncated download is never read as data.
  """
  try:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
      raw = f.read()
  except (OSError, EOFError, gzip.BadGzipFile) as err:
    raise UserError(f"cannot read {path} ({err}); re-download or reinstall the dataset") from None
  if len(raw) < 4:
    raise UserError(f"{path} is too short to be an IDX file ({len(raw)} bytes)")
  magic = struct.unpack(">I", raw[:4])[0]
  if magic != _IDX_MAGIC[kind]:
    raise UserError(f"{path} is not an IDX {kind} file (magic number 0x{magic:08x}, expected "
                    f"0x{_IDX_MAGIC[kind]:08x}); check the file names in the data directory")
  ndim = magic & 0xFF
  header = 4 + 4 * ndim
  dims = struct.unpack(f">{ndim}I", raw[4:header])
  expected = int(np.prod(dims)) + header
  if len(raw) != expected:
    raise UserError(f"{path} has {len(raw)} bytes but its header promises {expected} "
                    f"(shape {dims}); the file is truncated or corrupt: re-download it")
  return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)

def _idx_path(data_dir, split, kind):
  stem = f"{IDX_PREFIX[split]}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
  for candidate in (stem + ".gz", stem):
    path = os.path.join(data_dir, candidate)
    if os.path.exists(path):
      return path
  return None


def load_idx_split(data_dir, split, num_classes, shape):
  """(images uint8 (N,H,W,C), labels int32 (N,)) of one split from a directory of IDX files."""
  images_path = _idx_path(data_dir, split, "images")
  labels_path = _idx_path(data_dir, split, "labels")
  images, labels = read_idx(images_path, "images"), read_idx(labels_path, "labels")
  if images.shape[1:] != shape[:2]:
    raise UserError(f"{images_path} holds {images.shape[1]}x{images.shape[2]} images, expected "
                    f"{shape[0]}x{shape[1]}; is --data_dir the right dataset?")
  if len(images) != len(labels):
    raise UserError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} "
                    "labels; the files do not belong together")
  if labels.size and labels.max() >= num_classes:
    raise UserError(f"{labels_path} has label {labels.max()}, outside 0..{num_classes - 1}; "
                    "the file is corrupt or of another dataset")
  return images.reshape((-1, *shape)), labels.astype(np.int32)


def has_idx_files(data_dir, split="train"):
  return bool(data_dir) and all(_idx_path(data_dir, split, k) for k in ("images", "labels"))


def load(name, split, data_dir=None):
  """One split ("train" or "test") of dataset `name` as (uint8 NHWC images, int32 labels).

  Order of sources: `data_dir` if given (it must hold the IDX files), else the Debian
  package's directory when present, else the files downloaded from their canonical URLs
  (cnnlab.download) where it knows them, else TFDS (only when the network answers quickly).
  """
  if split not in IDX_PREFIX:
    raise UserError(f"unknown split {split!r}; choose 'train' or 'test'")
  default_dir, shape, names = spec(name)
  if data_dir:
    if not os.path.isdir(data_dir):
      raise UserError(f"data directory {data_dir!r} does not exist; pass --data_dir=DIR "
                      f"holding the {name} IDX files")
    if not os.access(data_dir, os.R_OK | os.X_OK):
      raise UserError(f"data directory {data_dir!r} is not readable; fix its permissions or "
                      "pass another --data_dir")
    if not has_idx_files(data_dir, split):
      raise UserError(f"{data_dir!r} lacks the {split} IDX files of {name} "
                      f"({IDX_PREFIX[split]}-images-idx3-ubyte[.gz], "
                      f"{IDX_PREFIX[split]}-labels-idx1-ubyte[.gz]); pass the right --data_dir")
    return load_idx_split(data_dir, split, len(names), shape)
  if has_idx_files(default_dir, split):
    return load_idx_split(default_dir, split, len(names), shape)
  if download.available(name):  # the canonical files, checked and cached (no TensorFlow)
    return load_idx_split(download.fetch(name), split, len(names), shape)
  return _load_tfds(name, split, default_dir)


def network_reachable(host="storage.googleapis.com", port=443, timeout=3.0):
  try:
    socket.create_connection((host, port), timeout=timeout).close()
    return True
  except OSError:
    return False


def _load_tfds(name, split, default_dir):
  """TFDS fallback; checks the network first so an offline machine fails in seconds."""
  install = ("install the files (Debian: apt-get install dataset-fashion-mnist, or "
             "./launch.sh setup) or " if name == "fashion_mnist" else "")  # the only package
  hint = (f"{name} not found in {default_dir} and TFDS cannot download it (offline); "
          f"{install}pass --data_dir=DIR holding the IDX files")
  if not network_reachable():
    raise UserError(hint)
  try:
    import tensorflow_datasets as tfds
    source = tfds.data_source(name, split=split)
    records = [source[i] for i in range(len(source))]
  except Exception as err:  # TFDS raises many types; all mean "not available here".
    raise UserError(f"{hint} (TFDS said: {str(err).splitlines()[0][:200]})") from None
  images = np.stack([r["image"] for r in records]).astype(np.uint8)
  labels = np.asarray([r["label"] for r in records], np.int32)
  return images, labels

