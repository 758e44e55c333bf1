"""Random-access sources over uint8 arrays: in memory, or .npy files read example by example.

A source is any object with `__len__` and `__getitem__(i) -> (uint8 H x W x C array, int
label)` (the protocol of cnnlab.input's sources). These two hold data that is already decoded,
so the streamed mode reads them with threads, not worker processes (stream.py).
"""

import os

import numpy as np

from cnnlab.errors import UserError


class ArraySource:
  """(images uint8 (N, H, W, C), labels (N,)) as a source; `arrays()` gives them back."""

  def __init__(self, images, labels):
    if len(images) != len(labels):
      raise ValueError(f"{len(images)} images but {len(labels)} labels")
    self.images, self.labels = images, labels

  def __len__(self):
    return len(self.images)

  def __getitem__(self, i):
    return self.images[i], int(self.labels[i])

  def arrays(self):
    return self.images, np.asarray(self.labels, np.int32)


class NpyFiles:
  """A source reading images.npy and labels.npy one example at a time with pread.

  Not a memory map: pages touched through a mapping count toward the process's resident
  memory until unmapped, so an epoch over a mapped file grows the RSS to the file's size.
  pread leaves them in the kernel's page cache, which the kernel drops under pressure.
  Picklable (paths only), so Grain worker processes can open their own.
  """

  def __init__(self, images_path, labels_path):
    self.images_path, self.labels_path = images_path, labels_path
    self.shape, self._offset = _npy_layout(images_path)
    self._example = int(np.prod(self.shape[1:]))
    self._open()

  def _open(self):
    self._fd = os.open(self.images_path, os.O_RDONLY)  # pread: one descriptor for all threads
    self._labels = np.load(self.labels_path)  # a few bytes an example: kept in memory

  def __len__(self):
    return self.shape[0]

  def __getitem__(self, i):
    if not 0 <= i < self.shape[0]:
      raise IndexError(i)
    raw = os.pread(self._fd, self._example, self._offset + i * self._example)
    return np.frombuffer(raw, np.uint8).reshape(self.shape[1:]), int(self._labels[i])

  def arrays(self):
    """The whole split in memory (resident mode)."""
    return np.load(self.images_path), np.load(self.labels_path).astype(np.int32)

  def __getstate__(self):  # a worker process opens the files itself
    return {k: v for k, v in self.__dict__.items() if k not in ("_fd", "_labels")}

  def __setstate__(self, state):
    self.__dict__.update(state)
    self._open()

  def __del__(self):
    if getattr(self, "_fd", None) is not None:
      os.close(self._fd)


def _npy_layout(path):
  """(shape, data offset) of a C-ordered uint8 .npy file, read from its header."""
  try:  # a mapping only to read the header: no page of the data is touched
    mapped = np.load(path, mmap_mode="r")
  except (OSError, ValueError) as err:
    raise UserError(f"cannot read {path} as a .npy file ({err}); rebuild the cache or "
                    "choose another dataset") from None
  shape, offset, dtype = mapped.shape, mapped.offset, mapped.dtype
  if dtype != np.uint8 or not mapped.flags.c_contiguous or len(shape) != 4:
    raise UserError(f"{path} holds {dtype} {shape}; expected uint8 images (N, H, W, C) "
                    "in C order")
  del mapped
  return shape, offset


class Part:
  """source[indices[i]]: a part of a split (the training or validation part of "train")."""

  def __init__(self, source, indices):
    self.source, self.indices = source, indices

  def __len__(self):
    return len(self.indices)

  def __getitem__(self, i):
    return self.source[int(self.indices[i])]


def as_arrays(source):
  """(uint8 images, int32 labels) of a whole source, read once (resident mode)."""
  if hasattr(source, "arrays"):
    return source.arrays()
  images, labels = np.zeros((0, 0, 0, 0), np.uint8), np.empty(len(source), np.int32)
  for i in range(len(source)):
    image, labels[i] = source[i]  # each example read once (a folder's: decoded once)
    if not i:
      images = np.empty((len(source), *np.shape(image)), np.uint8)
    images[i] = image
  return images, labels
