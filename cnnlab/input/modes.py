"""config.input: how the training split reaches the train step (resident or streamed).

Both modes give the train step the same global batches in the same order, the permutation of
(seed, epoch) (train.step.epoch_permutation), so a run's numbers do not depend on the mode and
`auto` may choose freely: resident when the uint8 training split fits the memory budget,
streamed otherwise. A mode is an object with `fed_steps` (None: the step gathers its batch
from the whole split on the device; N: it indexes a feed of N batches) and `epoch(state,
start)`, an iterator of the train step's data arguments for steps `start`.. of the epoch.
"""

import os

import jax
import numpy as np

from cnnlab import parallel
from cnnlab.errors import UserError
from cnnlab.input import arrays, stream

MODES = ("auto", "resident", "stream")
# The default budget: this share of the smaller of host memory and one device's memory. The
# resident split is held on the host while loading and once on every device (on CPU every
# device's copy is in host memory), next to the model, its activations and the evaluation data.
BUDGET_FRACTION = 0.25


def check(config):
  """config.input, input_budget_mib and input_workers: values the modes can use."""
  mode = config.get("input", "auto")
  if mode not in MODES:
    raise UserError(f"config.input must be auto, resident or stream, got {mode!r}; set "
                    "--config.input=auto (resident when the data fits the memory budget)")
  for name in ("input_budget_mib", "input_workers"):
    value = config.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
      raise UserError(f"config.{name} must be an integer >= 0 (0 = automatic), got {value!r}")
  if mode == "stream" and config.get("num_seeds", 1) > 1:
    raise UserError("config.input=stream trains one seed per run; set --config.num_seeds=1 "
                    "or --config.input=resident (seeds share one resident copy of the data)")


def host_memory_bytes():
  return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def device_memory_bytes(devices):
  """The smallest memory of `devices`; CPU devices share the host's memory between them."""
  limits = [(d.memory_stats() or {}).get("bytes_limit") for d in devices
            if d.platform != "cpu"]
  if limits and all(limits):
    return min(limits)
  return host_memory_bytes() // max(1, len(devices))


def budget_bytes(config, devices=None):
  """config.input_budget_mib, or BUDGET_FRACTION of min(host memory, one device's memory)."""
  if config.get("input_budget_mib", 0):
    return config.input_budget_mib * 2 ** 20
  devices = jax.local_devices() if devices is None else devices
  return int(BUDGET_FRACTION * min(host_memory_bytes(), device_memory_bytes(devices)))


def choose(config, source, num_seeds=1):
  """"resident" or "stream" for `source` (the training split) under config.input."""
  example_bytes = np.asarray(source[0][0]).nbytes if len(source) else 0
  return decide(config, len(source), example_bytes, num_seeds)


def decide(config, examples, example_bytes, num_seeds=1):
  """"resident" or "stream" for `examples` uint8 images of `example_bytes` each (the one rule;
  the loop calls it from the dataset's info before decoding anything)."""
  mode = config.get("input", "auto")
  if mode != "auto":
    return mode
  stacked = parallel.stacked(num_seeds)  # seeds share one resident copy
  return "resident" if stacked or examples * example_bytes <= budget_bytes(config) else "stream"


def make(config, mesh, train, steps_per_epoch, num_seeds, epoch_order):
  """The mode for the training split `train`: (images, labels) arrays or a source."""
  source = arrays.ArraySource(*train) if isinstance(train, tuple) else train
  if choose(config, source, num_seeds) == "stream":
    workers = stream.workers_for(source, config.get("input_workers", 0))
    return stream.Stream(source, mesh, config.batch_size, steps_per_epoch, epoch_order,
                         workers)
  images, labels = arrays.as_arrays(source)
  if jax.process_count() > 1 and not parallel.stacked(num_seeds):  # each process: its share
    feed = parallel.epoch_feed(images, labels, config.batch_size, steps_per_epoch, mesh)
    return EpochFeed(feed, epoch_order, steps_per_epoch)
  on_devices = parallel.put((images, labels), parallel.replicated(mesh))
  return Resident(*on_devices, epoch_order)


class Resident:
  """The split on every device; each step gathers its batch there by its index."""

  fed_steps = None

  def __init__(self, images, labels, epoch_order):
    self.images, self.labels, self.epoch_order = images, labels, epoch_order

  def epoch(self, state, start):
    return _forever((self.images, self.labels, self.epoch_order(state.step, state.rng)))


class EpochFeed:
  """Multi-process resident: each epoch's batches fed at its start, each process its rows."""

  def __init__(self, feed, epoch_order, steps_per_epoch):
    self.feed, self.epoch_order, self.fed_steps = feed, epoch_order, steps_per_epoch

  def epoch(self, state, start):
    return _forever(self.feed(self.epoch_order(state.step, state.rng)))


def _forever(data):
  """The same data for every step (a generator, closed like the streamed mode's)."""
  while True:
    yield data
