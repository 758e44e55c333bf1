"""The one epoch loop: train epoch by epoch, evaluate after each, and let a hook decide.

The input mode (cnnlab.input.modes: resident on the device, or streamed) gives each step its
data in the order of a per-epoch permutation; metrics are summed on the device and read back
once per epoch. `run_epochs` calls a hook after every epoch's evaluation, and the hook decides
what an epoch means to its caller (train_and_evaluate: record, checkpoint, early stopping;
time-to-accuracy: "reached yet?").
"""

import signal
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from tqdm import tqdm

from cnnlab import parallel
from cnnlab.input import modes as input_modes
from cnnlab.train import state as state_lib
from cnnlab.train import step as step_lib
from cnnlab.train.evaluate import eval_batches, evaluate, precompile, precompile_evaluation


class Job(NamedTuple):
  """What the epoch loop needs: the config, the input mode, the jitted programs."""
  config: Any
  steps_per_epoch: int
  num_seeds: int  # 1, or S > 1: the state is stacked and the programs vmapped
  replicated: Any  # where the state, sums and training data live
  batch_sharding: Any  # how a batch splits over the devices
  eval_batches: list
  train_batch: Callable
  batches: Any  # the input mode (cnnlab.input.modes): epoch(state, start) -> each step's data


def make_job(config, mesh, train, evaluation):
  """The training split's input mode (`train`: (images, labels) or a source), the evaluation
  batches on the mesh, and the jitted programs."""
  n = len(train[0] if isinstance(train, tuple) else train)
  steps_per_epoch = n // config.batch_size  # the last partial batch is dropped
  num_seeds = state_lib.num_seeds(config)
  replicated, sharded = parallel.replicated(mesh), parallel.batch_sharded(mesh)
  batches = eval_batches(*evaluation, config.eval_batch_size, sharded)
  order = step_lib.make_epoch_order(steps_per_epoch, n, num_seeds)
  feed = input_modes.make(config, mesh, train, steps_per_epoch, num_seeds, order)
  train_batch = step_lib.make_train_batch(
      config.batch_size, feed.fed_steps or steps_per_epoch, num_seeds=num_seeds,
      batch_sharding=sharded, prebatched=feed.fed_steps is not None,
      label_smoothing=config.label_smoothing, skip_nonfinite=config.skip_nonfinite_updates,
      augment_config=_augment_config(config))
  return Job(config, steps_per_epoch, num_seeds, replicated, sharded, batches, train_batch, feed)


def _augment_config(config):
  """The config's augmentation block as plain Python values, or None when it does nothing."""
  aug = config.get("augment")
  aug = aug.to_dict() if aug is not None else {}
  active = aug.get("crop_padding", 0) or aug.get("flip", False) or aug.get("erase_prob", 0.0)
  return aug if active else None


def host_step(state):
  """The host's copy of the step counter (all seeds of a stacked state share it)."""
  return int(np.max(jax.device_get(state.step)))


def precompile_training(job, state_shapes):
  """Compile the training step on a background thread from the state's shapes
  (state.shapes), so that XLA's compile overlaps building the state (initialisation,
  whitening); pass the thread to run_epochs, which joins it before the first step.

  Resident input only (a streamed epoch would start its readers): None otherwise.
  """
  if not isinstance(job.batches, input_modes.Resident):
    return None
  zeros = lambda: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), state_shapes)
  placeholder = jax.jit(zeros, out_shardings=job.replicated)()  # where the state will live
  sums = parallel.put(step_lib.zero_sums(job.num_seeds), job.replicated)
  return precompile(job.train_batch, placeholder, sums, *next(job.batches.epoch(placeholder, 0)))


def run_epochs(job, state, sums, on_epoch, stop=None, on_interrupt=None, compiling=None):
  """Train epoch by epoch to config.num_epochs, or until `on_epoch` returns True.

  on_epoch(state, sums, record, train_sums, seconds) runs after each epoch's evaluation
  (record: epoch_record's line; sums: already zeroed for the next epoch). A signal noted
  by `stop` ends the epoch early; mid-epoch, on_interrupt(state, sums) is called (it saves
  and exits). `compiling`: precompile_training's thread, if any. Returns (state, sums).
  """
  flip_tta = job.config.get("eval_flip_tta", False)
  compiled = precompile_evaluation(state, job.eval_batches, job.num_seeds, flip_tta)
  if compiling is not None:
    compiling.join()
  guard = job.config.transfer_guard or "allow"
  steps_per_epoch = job.steps_per_epoch
  while (step := host_step(state)) < job.config.num_epochs * steps_per_epoch:
    t0 = time.time()
    with jax.transfer_guard(guard):  # the epoch below moves nothing between host and device
      state, sums = _train_epoch(job, state, sums, step, stop)
    # reliability: a signal after the epoch's last step waits for its evaluation and save
    # (stopping here would resume with this epoch's sums but never record the epoch)
    if stop is not None and stop.signum is not None and host_step(state) % steps_per_epoch:
      on_interrupt(state, sums)
    compiled.join()
    with jax.transfer_guard(guard):
      val = evaluate(state, job.eval_batches, job.num_seeds, flip_tta)
    train = jax.device_get(sums)
    elapsed = time.time() - t0
    sums = parallel.put(step_lib.zero_sums(job.num_seeds), job.replicated)
    record = epoch_record(step // steps_per_epoch + 1, host_step(state), train, val,
                          job.config.batch_size)
    if on_epoch(state, sums, record, train, elapsed):
      break
  return state, sums


def _train_epoch(job, state, sums, step, stop):
  data = job.batches.epoch(state, step % job.steps_per_epoch)  # input: one item per step
  bar = tqdm(range(step % job.steps_per_epoch, job.steps_per_epoch),
             desc=f"epoch {step // job.steps_per_epoch + 1}", leave=False, disable=None,
             mininterval=1.0, unit="step")
  try:
    for i in bar:
      state, sums = job.train_batch(state, sums, *next(data))
      if stop is not None and stop.check(step - step % job.steps_per_epoch + i + 1):
        break
      if i % 100 == 99:
        jax.block_until_ready(sums["count"])  # keep the bar honest; reads nothing back
  finally:
    data.close()  # a streamed epoch ends its readers
  return state, sums


def epoch_record(epoch, step, train, val, batch_size):
  """One metrics.jsonl line; with several seeds, means plus a per-seed list of each metric.
  The train loss is the mean over the images of finite steps (`count` counts images,
  `nonfinite` steps)."""
  finite_images = train["count"] - train["nonfinite"] * batch_size
  per_seed = {
      "train_loss": train["loss"] / np.maximum(finite_images, 1),
      "train_accuracy": train["correct"] / train["count"],
      "val_loss": val["loss"], "val_accuracy": val["accuracy"]}
  record = {"epoch": epoch, "step": step, "nonfinite_steps": int(np.sum(train["nonfinite"]))}
  for key, value in per_seed.items():
    value = np.asarray(value, np.float64)
    record[key] = float(np.mean(value))
    if value.ndim:
      record[f"{key}_per_seed"] = [float(v) for v in value]
  return record


class StopFlag:
  """SIGTERM / Ctrl-C set a flag checked between steps, so the run can save and exit cleanly.

  In a multi-process run JAX's preemption service takes SIGTERM (sent to any process) and
  names a step that every process reaches before stopping: `check(step)` after each step
  turns that into the same flag, so all processes save that one step together. Ctrl-C there
  reaches each process at its own step, so nothing can be saved together: `check` raises
  KeyboardInterrupt at the next step boundary instead (the CLI's line and exit 130): raised
  by Python's default handler, wherever the main thread happened to be, it could be lost.
  """

  def __init__(self):
    self.signum = None
    self._multi = jax.process_count() > 1
    signals = (signal.SIGINT,) if self._multi else (signal.SIGINT, signal.SIGTERM)
    self._old = {s: signal.signal(s, self._handle) for s in signals}

  def check(self, step):
    """True once the run should stop after `step` (call after every step, in order)."""
    if self._multi:
      if self.signum == signal.SIGINT:
        raise KeyboardInterrupt
      if multihost_utils.reached_preemption_sync_point(step):
        self.signum = signal.SIGTERM
    return self.signum is not None

  def raise_if_set(self):
    """In start-up (nothing to save yet): Ctrl-C -> KeyboardInterrupt, SIGTERM -> exit 143."""
    if self.signum == signal.SIGINT:
      raise KeyboardInterrupt
    if self.signum is not None:
      raise SystemExit(128 + self.signum)

  def _handle(self, signum, frame):
    self.signum = signum

  def restore(self):
    for s, handler in self._old.items():
      signal.signal(s, handler)
