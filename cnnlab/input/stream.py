"""The streamed input mode: Grain reads this process's share of each global batch from a source.

Per epoch: the permutation of the epoch (the resident mode's own, computed on the device from
the run's rng and the epoch, read back once) -> the rows of each remaining global batch that
this process's devices hold -> Grain reads those examples (threads for array sources, worker
processes for sources that decode) and batches them -> each local batch is placed on the mesh
with jax.make_array_from_process_local_data, a few steps ahead of the step that needs it.
So the order is a function of (seed, epoch, step) alone, as in the resident mode: a resume
mid-epoch starts the epoch's dataset at its step, with no iterator state saved.
"""

import collections
import os

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from cnnlab.input import arrays

# Reading threads for sources already decoded (arrays, .npy files): reads are memory copies or
# page-cache hits, so a few threads keep up; more only contend for the GIL.
READ_THREADS = 4
PREFETCH_BATCHES = 2  # global batches placed on the devices ahead of the step


class Stream:
  """Batches for the train step, read from `source` per epoch (the fed step of one batch).

  epoch(state, start) -> iterator of (images (1, B, H, W, C), labels (1, B), order): the
  global batches of steps `start`.. of the epoch holding state.step, on `mesh`.
  `workers` > 0 decodes in that many worker processes (mp_prefetch); 0 reads with threads.
  """

  fed_steps = 1  # the train step picks batch 0 of a one-batch feed (step.make_train_batch)

  def __init__(self, source, mesh, batch_size, steps_per_epoch, epoch_order, workers=0):
    self.source, self.batch_size, self.steps = source, batch_size, steps_per_epoch
    self.epoch_order, self.workers = epoch_order, workers
    self.sharding = NamedSharding(mesh, P(None, "data"))
    self.rows = process_rows(self.sharding, batch_size)

  def epoch(self, state, start):
    with jax.transfer_guard("allow"):  # the epoch's one read of its order from the device
      order = self.epoch_order(state.step, state.rng)
      host = np.asarray(jax.device_get(order))
    lo, hi = self.rows
    picked = host[:self.steps * self.batch_size].reshape(self.steps, self.batch_size)
    return self._feed(picked[start:, lo:hi].reshape(-1), order)

  def _feed(self, indices, order):
    local = self.rows[1] - self.rows[0]
    iterator = iter(reader(self.source, indices, local, self.workers))
    ahead = collections.deque()
    try:
      for images, labels in iterator:
        ahead.append(self._put(images, labels))
        if len(ahead) > PREFETCH_BATCHES:
          yield (*ahead.popleft(), order)
      while ahead:
        yield (*ahead.popleft(), order)
    finally:  # also when the epoch stops early: end Grain's threads or worker processes
      iterator.close()

  def _put(self, images, labels):
    b, images = self.batch_size, np.asarray(images, np.uint8)
    with jax.transfer_guard("allow"):  # the intended host->device copy of each batch
      return (jax.make_array_from_process_local_data(
                  self.sharding, images[None], (1, b, *images.shape[1:])),
              jax.make_array_from_process_local_data(
                  self.sharding, np.asarray(labels, np.int32)[None], (1, b)))


class Picked(arrays.Part):
  """The examples this process reads, as uint8 (a Part of its own class: what a read is)."""

  def __getitem__(self, i):
    image, label = super().__getitem__(i)
    return np.asarray(image, np.uint8), label


def reader(source, indices, batch, workers=0):
  """Grain's iterable of (images, labels) batches of `batch` examples source[indices[i]], in
  order: decoded in `workers` worker processes (mp_prefetch), or read by threads (0)."""
  import grain
  ds = grain.MapDataset.source(Picked(source, indices))
  if workers:
    _absl_flags_parsed()
    return ds.batch(batch).to_iter_dataset().mp_prefetch(
        grain.MultiprocessingOptions(num_workers=workers))
  return ds.to_iter_dataset(grain.ReadOptions(
      num_threads=READ_THREADS, prefetch_buffer_size=2 * batch)).batch(batch)


def process_rows(sharding, batch_size):
  """(lo, hi): the rows of a (1, batch_size, ...) global batch this process's devices hold."""
  index_map = sharding.addressable_devices_indices_map((1, batch_size))
  spans = sorted({(s[1].start or 0, batch_size if s[1].stop is None else s[1].stop)
                  for s in index_map.values()})
  lo, hi = spans[0][0], spans[-1][1]
  if sum(b - a for a, b in spans) != hi - lo:  # make_array_from_process_local_data's layout
    raise ValueError(f"this process's devices hold rows {spans}, not one contiguous block")
  return lo, hi


def workers_for(source, requested):
  """Worker processes for `source`: `requested` if > 0; else none for array sources (already
  decoded: threads suffice) and up to 8 (one per core) for sources that decode."""
  if requested > 0:
    return requested
  while isinstance(source, arrays.Part):  # the training part of a split: its source counts
    source = source.source
  if isinstance(source, (arrays.ArraySource, arrays.NpyFiles)):
    return 0
  return max(1, min(8, os.cpu_count() or 1))


def _absl_flags_parsed():
  """Grain's worker processes read absl flags; a library caller may never have parsed any."""
  from absl import flags
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
