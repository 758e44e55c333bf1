"""`folder:PATH`: a directory of class subfolders (Keras image_dataset_from_directory, torchvision
ImageFolder): class names are the sorted subfolder names, files are found in each recursively.

Splits: PATH/train and PATH/test when both exist (the same class subfolders in each), else
the test split is drawn from all of PATH by config.test_fraction and config.split_seed. Files
are checked once (header, size, colour, a complete end) before any decoding, so a bad file is
named before training starts; config.skip_bad_images skips such files with a count instead.
"""

import collections
import functools
import os

import numpy as np

from cnnlab.errors import UserError, warn
from cnnlab.input import splits, transform

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")

# paths and labels of every file kept; sizes (width, height); splits {"train"/"test": indices}
Scan = collections.namedtuple("Scan", "root class_names paths labels sizes grey splits")


class BadFile(Exception):
  """A file that is not a complete picture (its reason is the message)."""


@functools.lru_cache(maxsize=8)
def scan(root, test_fraction, split_seed, skip_bad):
  """The files, classes and splits of folder:`root` (cached: read once per process)."""
  if not os.path.isdir(root):
    raise UserError(f"folder:{root} is not a directory; pass --config.dataset=folder:PATH "
                    "with PATH holding one subfolder of images per class")
  parts = [os.path.join(root, "train"), os.path.join(root, "test")]
  if not all(os.path.isdir(p) for p in parts):
    parts = [root]
  names = _class_names(parts)
  found = [_files(part, names) for part in parts]
  bad, kept = [], []
  for files in found:
    kept.append([(path, label, *_probe_or_note(path, bad)) for path, label in files])
    kept[-1] = [k for k in kept[-1] if k[2] is not None]
  if bad:
    _refuse_or_count(bad, root, skip_bad)
  rows = kept[0] + (kept[1] if len(kept) == 2 else [])
  _check_every_class_kept(rows, names, root)
  n0 = len(kept[0])
  parts_of = (splits.drawn_test(n0, test_fraction, split_seed) if len(kept) == 1 else
              {"train": np.arange(n0), "test": np.arange(n0, len(rows))})
  return Scan(root, names, tuple(r[0] for r in rows), np.asarray([r[1] for r in rows], np.int32),
              tuple(r[2] for r in rows), all(r[3] for r in rows), parts_of)


def _class_names(parts):
  """The sorted class subfolders, the same in each part (train/ and test/)."""
  found = [sorted(d for d in os.listdir(p) if not d.startswith(".")
                  and os.path.isdir(os.path.join(p, d))) for p in parts]
  if len(found) == 2 and found[0] != found[1]:
    differ = sorted(set(found[0]) ^ set(found[1]))
    raise UserError(f"{parts[0]} and {parts[1]} hold different class subfolders "
                    f"({', '.join(differ[:5])} in only one); give both the same classes")
  if len(found[0]) < 2:
    what = f"only one class subfolder ({found[0][0]})" if found[0] else "no class subfolders"
    raise UserError(f"folder:{parts[0]} has {what}; a classifier needs at least 2 classes: "
                    "put each class's images in PATH/CLASS_NAME/")
  return tuple(found[0])


def _files(part, names):
  """[(path, label)] of every non-hidden file under each class subfolder, sorted."""
  out = []
  for label, name in enumerate(names):
    start = len(out)
    for top, dirs, files in os.walk(os.path.join(part, name)):
      dirs[:] = sorted(d for d in dirs if not d.startswith("."))
      out += [(os.path.join(top, f), label) for f in sorted(files) if not f.startswith(".")]
    if len(out) == start:
      raise UserError(f"class subfolder {os.path.join(part, name)} holds no images "
                      f"({', '.join(e[1:] for e in EXTENSIONS)}); add some or remove it")
  return out


def _probe_or_note(path, bad):
  """((width, height), grey) of a picture file, or (None, None) noted in `bad`."""
  try:
    return _probe(path)
  except BadFile as err:
    bad.append((path, str(err)))
    return None, None


def _probe(path):
  from PIL import Image
  if not path.lower().endswith(EXTENSIONS):
    raise BadFile(f"not an image file (cnnlab reads {', '.join(EXTENSIONS)})")
  try:
    with Image.open(path) as im:
      size, grey, fmt = im.size, transform.is_grey(im), im.format
  except (OSError, ValueError, SyntaxError) as err:
    why = transform._why(err).replace(f" {path!r}", "")  # PIL repeats the path
    raise BadFile(f"not a readable image ({why})") from None
  _check_complete(path, fmt)
  return size, grey


def _check_complete(path, fmt):
  """A truncated file (an interrupted copy or download) lacks its format's end marker."""
  with open(path, "rb") as f:
    head = f.read(8)
    f.seek(max(0, os.path.getsize(path) - 1024))
    tail = f.read()
  size = os.path.getsize(path)
  end = {"JPEG": (b"\xff\xd9", 1024), "PNG": (b"IEND", 1024), "GIF": (b";", 16)}.get(fmt)
  declared = {"WEBP": int.from_bytes(head[4:8], "little") + 8,
              "BMP": int.from_bytes(head[2:6], "little")}.get(fmt, 0)
  if (end and end[0] not in tail[-end[1]:]) or declared > size:
    raise BadFile(f"truncated {fmt} file ({size} bytes)")


def _refuse_or_count(bad, root, skip_bad):
  path, why = bad[0]
  if not skip_bad:
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    raise UserError(f"{path}: {why}{more}; replace or remove it, or set "
                    "--config.skip_bad_images=True to skip such files (with a count)")
  warn(f"cnnlab: note: skipped {len(bad)} unreadable file(s) under folder:{root} "
       f"(config.skip_bad_images; first: {path}: {why})")


def _check_every_class_kept(rows, names, root):
  counts = np.bincount([r[1] for r in rows], minlength=len(names))
  if not counts.all():
    raise UserError(f"class {names[int(np.argmin(counts))]!r} of folder:{root} has no readable "
                    "images left; add some or remove its subfolder")


def own_shape(found):
  """(H, W, C) of a folder whose images all have one size (config.image_size = 0)."""
  sizes = collections.Counter(found.sizes)
  if len(sizes) > 1:
    (a, _), (b, _) = sizes.most_common(2)
    raise UserError(f"folder:{found.root} holds images of different sizes ({a[0]}x{a[1]}, "
                    f"{b[0]}x{b[1]}, ...); set --config.image_size=N (resize + centre crop "
                    "to N x N, e.g. 64)")
  (w, h), = sizes
  transform.check_size(max(w, h), f"the images' size in folder:{found.root} ({w}x{h})")
  return (h, w, 1 if found.grey else 3)


class FolderSource:
  """Split `indices` of a scanned folder: item i -> (uint8 array of `shape`, label)."""

  def __init__(self, found, indices, shape):
    self.paths = [found.paths[i] for i in indices]
    self.labels = found.labels[np.asarray(indices, np.int64)]
    self.shape = tuple(shape)

  def __len__(self):
    return len(self.paths)

  def __getitem__(self, i):
    return transform.read(self.paths[i], self.shape), int(self.labels[i])

  def arrays(self):
    """The whole split: (uint8 (N, H, W, C), int32 (N,)), decoded in order."""
    images = np.zeros((len(self), *self.shape), np.uint8)
    for i, path in enumerate(self.paths):
      images[i] = transform.read(path, self.shape)
    return images, self.labels.astype(np.int32)
