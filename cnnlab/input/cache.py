"""A decoded copy of any source on disk, so the second epoch and the second run decode nothing.

`cached(source, directory, key)` decodes every example of `source` once into
directory/images.npy (uint8 N x H x W x C) and labels.npy, and returns an arrays.NpyFiles
reading them back. A finished cache is marked by cache.json (written last, holding `key`, the
count and the shape): a run killed while writing leaves no marker and the next one rewrites;
a cache of another key (another dataset, size or transform) is rewritten too. Why .npy read
with pread and not ArrayRecord: docs/input.md (random reads of single examples).
"""

import contextlib
import errno
import fcntl
import hashlib
import json
import os

import numpy as np

from cnnlab import files
from cnnlab.errors import UserError, is_disk_full
from cnnlab.input import arrays

MARKER, IMAGES, LABELS, LOCK = "cache.json", "images.npy", "labels.npy", ".lock"
TMP = ".tmp.npy"  # np.save keeps a name ending in .npy as it is
CHUNK = 1024  # examples decoded between writes


def cached(source, directory, key, log=None):
  """An NpyFiles source of `source`'s decoded examples, written to `directory` if needed."""
  if not len(source):
    raise UserError(f"cannot cache an empty dataset into {directory}; check the dataset")
  shape = tuple(np.shape(source[0][0]))
  want = {"key": key, "examples": len(source), "shape": list(shape)}
  paths = [os.path.join(directory, name) for name in (IMAGES, LABELS)]
  if _read_marker(directory) != want:
    try:
      with _one_writer(directory) as alone:  # the first writes; the rest wait, then read it
        if _read_marker(directory) != want:
          if log:
            log(f"decoding {len(source)} examples once into {directory}")
          _write(source, directory, shape, paths, alone)
          files.write_json(os.path.join(directory, MARKER), want)
    except OSError as err:
      if not is_disk_full(err):
        raise
      raise UserError(f"no space left on device while caching into {directory}; free "
                      "space or choose another cache directory") from None
  return arrays.NpyFiles(*paths)


@contextlib.contextmanager
def _one_writer(directory):
  """An exclusive lock on `directory`'s cache, held while it is written. Several processes may
  want one cache at once: those of a --distributed run on one host, or sweep points run side
  by side. flock is released by the kernel when its process dies (a killed writer leaves no
  stale lock). Yields True when locked; where the file system has no flock (False), each
  writer writes files of its own names and renames them into place."""
  os.makedirs(directory, exist_ok=True)
  fd = os.open(os.path.join(directory, LOCK), os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError as err:
      if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP):
        raise
      yield False
    else:
      yield True
  finally:
    os.close(fd)


def directory_for(key, root=None):
  """The default place of `key`'s cache: $CNNLAB_DATA_CACHE or ~/.cache/cnnlab/decoded, then a
  digest of the key (a dataset name with its size and transform, e.g. "folder:/x|32|train")."""
  root = root or files.user_cache("CNNLAB_DATA_CACHE", "decoded")
  return os.path.join(root, hashlib.sha256(key.encode()).hexdigest()[:16])


def _read_marker(directory):
  try:
    with open(os.path.join(directory, MARKER)) as f:
      return json.load(f)
  except (OSError, ValueError):  # absent or half-written: not a finished cache
    return None


def _write(source, directory, shape, paths, alone):
  """images.npy written in chunks through a file (no mapping: the RSS stays one chunk), then
  labels.npy, each renamed into place. `alone` (the lock held): a killed writer's files go."""
  marker = os.path.join(directory, MARKER)
  if os.path.exists(marker):
    os.remove(marker)  # first: a half-rewritten cache is never taken as finished
  for name in os.listdir(directory) if alone else ():
    if name.endswith(TMP):
      os.remove(os.path.join(directory, name))
  n, labels = len(source), np.empty(len(source), np.int32)
  tmp = f"{paths[0]}.{os.getpid()}{TMP}"  # this process's own: writers without a lock
  with open(tmp, "wb") as f:
    np.lib.format.write_array_header_1_0(
        f, {"descr": "|u1", "fortran_order": False, "shape": (n, *shape)})
    for start in range(0, n, CHUNK):
      chunk = np.empty((min(CHUNK, n - start), *shape), np.uint8)
      for j in range(len(chunk)):
        image, labels[start + j] = source[start + j]
        chunk[j] = image
      f.write(chunk.tobytes())
  os.replace(tmp, paths[0])
  tmp = f"{paths[1]}.{os.getpid()}{TMP}"
  np.save(tmp, labels)
  os.replace(tmp, paths[1])
