"""train_and_evaluate(config, workdir): the epoch loop around the pure steps of steps.py.

Data lives on the device; each step gathers its own batch from a per-epoch permutation, and
metrics are summed on the device and read back once per epoch. Validation runs every epoch,
early stopping restores the best epoch's weights, and the test set is read and evaluated
exactly once, at the end. The workdir is locked, checkpointed every epoch and resumed from.
"""

import json
import math
import os
import signal
import threading
import time

import jax
import numpy as np
from tqdm import tqdm

from cnnlab import checkpoint, data, parallel, runs, steps
from cnnlab.runs import build
from cnnlab.config_check import check_config, check_resume_config
from cnnlab.errors import UserError
from cnnlab.writers import MetricWriter


def eval_batches(images, labels, batch_size, sharding=None):
  """Device batches covering every example once: the last one padded and masked."""
  n = len(images)
  padded = math.ceil(n / batch_size) * batch_size
  pad = lambda a: np.concatenate([a, np.zeros((padded - n, *a.shape[1:]), a.dtype)])
  mask = np.arange(padded) < n
  put = lambda a: jax.device_put(a, sharding) if sharding is not None else jax.device_put(a)
  return [{"image": put(pad(images)[i:i + batch_size]), "label": put(pad(labels)[i:i + batch_size]),
           "mask": put(mask[i:i + batch_size])} for i in range(0, padded, batch_size)]


def evaluate(state, batches, seeds=0, flip_tta=False):
  """Mean loss and accuracy over prepared eval batches (one host read at the end).

  Values are floats, or arrays with one entry per seed for a stacked multi-seed state.
  """
  accumulate, sums = _eval_program(state, seeds, flip_tta)
  for batch in batches:
    sums = accumulate(state, sums, batch)
  sums = jax.device_get(sums)
  out = {"loss": sums["loss"] / sums["count"], "accuracy": sums["correct"] / sums["count"]}
  return {k: float(v) if not seeds else np.asarray(v, np.float64) for k, v in out.items()}


def precompile(jitted, *args):
  """Compile `jitted` for the arguments of its first call, on a background thread.

  XLA compiles without holding the GIL, so on a 2-core CPU the evaluation program compiles
  while the main thread compiles the training step. Pass the arrays themselves: their
  shardings (committed or not) are part of what the call will look up. Join the thread
  before that call (a call during the compile compiles again); errors resurface there.
  """

  def compile_quietly():
    try:
      jitted.lower(*args).compile()
    except Exception:  # pylint: disable=broad-except  (the real call reports it)
      pass

  thread = threading.Thread(target=compile_quietly, daemon=True)
  thread.start()
  return thread


def precompile_evaluation(state, batches, seeds=0, flip_tta=False):
  """Compile evaluate's program on a background thread; join it before calling evaluate."""
  accumulate, sums = _eval_program(state, seeds, flip_tta)
  return precompile(accumulate, state, sums, batches[0])


def _eval_program(state, seeds, flip_tta):
  """(jitted accumulate, zero sums placed where the state lives)."""
  accumulate, zeros = steps.eval_accumulate_fn(seeds, flip_tta)
  sums = zeros()
  if isinstance(state.step, jax.Array):  # explicitly: allowed under the transfer guard
    sums = jax.device_put(sums, state.step.sharding)
  return accumulate, sums


class _StopFlag:
  """SIGTERM / Ctrl-C set a flag checked between steps, so the run can save and exit cleanly."""

  def __init__(self):
    self.signum = None
    self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}

  def _handle(self, signum, frame):
    self.signum = signum

  def restore(self):
    for s, handler in self._old.items():
      signal.signal(s, handler)


def train_and_evaluate(config, workdir, resume=True, log=print):
  """Train `config` in `workdir` (resuming when it holds checkpoints); return the results."""
  check_config(config)
  os.makedirs(workdir, exist_ok=True)
  lock = checkpoint.lock_workdir(workdir)
  try:
    return _run(config, workdir, resume, log)
  except OSError as err:  # reliability: a full disk anywhere (metrics, events) is one line
    if not checkpoint.is_disk_full(err):
      raise
    raise UserError(f"no space left on device while writing {err.filename or workdir}; "
                    "the checkpoints are kept: free space and resume") from None
  finally:
    os.close(lock)


def _run(config, workdir, resume, log):
  results_path = os.path.join(workdir, "results.json")
  config_path = os.path.join(workdir, "config.json")
  if os.path.exists(results_path):
    results = checkpoint.read_json(results_path)
    log(f"{workdir} holds a finished run (test accuracy {results['test_accuracy']:.4f}); "
        "nothing to do. Use a new --workdir to train again.")
    return results
  mesh = parallel.make_mesh(config.num_devices)
  parallel.check_divisible(config.batch_size, mesh, "batch_size")
  parallel.check_divisible(config.eval_batch_size, mesh, "eval_batch_size")
  splits = data.load_train_validation(config)
  train_images, train_labels = splits["train"]
  check_config(config, num_train=len(train_images))
  spe = len(train_images) // config.batch_size  # the last partial batch is dropped
  seeds = runs.num_seeds(config)
  model, state = build(config, spe)
  sums = steps.zero_sums(seeds)

  mngr = checkpoint.manager(workdir)
  meta = {"history": []}
  if mngr.all_steps():
    if not resume:
      raise UserError(f"workdir {workdir!r} already has checkpoints and --noresume was given; "
                      "choose a new --workdir (nothing there is overwritten)")
    if not os.path.exists(config_path):  # reliability: never guess whose checkpoints these are
      raise UserError(f"workdir {workdir!r} has checkpoints but no config.json, so they cannot "
                      "be checked against --config; restore config.json or use a new --workdir")
    check_resume_config(checkpoint.read_json(config_path), config, workdir)
    restored = checkpoint.restore_latest_good(mngr, {"state": state, "sums": sums},
                                              log=checkpoint.warn, set_aside=True)
    if restored is None:
      raise UserError(f"no usable checkpoint in {workdir}/checkpoints (all failed their "
                      "checks); move it away or choose a new --workdir")
    (tree, meta) = restored
    state, sums = tree["state"], tree["sums"]
    log(f"resuming {workdir} from step {_step(state)} "
        f"(epoch {_step(state) // spe + 1}, batch {_step(state) % spe})")
  if not os.path.exists(config_path):
    checkpoint.write_json(config_path, json.loads(config.to_json_best_effort()))

  history = meta["history"]
  writer = MetricWriter(workdir, history)
  replicated = parallel.replicated(mesh)
  val_batches = eval_batches(*splits["validation"], config.eval_batch_size,
                             parallel.batch_sharded(mesh))
  images, labels = jax.device_put((train_images, train_labels), replicated)
  state, sums = jax.device_put((state, sums), replicated)
  train_batch = make_train_batch(config, spe, seeds, parallel.batch_sharded(mesh))
  order_fn = make_epoch_order(spe, len(train_images), seeds)
  flip_tta = config.get("eval_flip_tta", False)
  eval_compiled = precompile_evaluation(state, val_batches, seeds, flip_tta)
  guard = config.transfer_guard or "allow"
  stop = _StopFlag()
  t_start = time.time() - meta.get("train_wall_time_s", 0.0)  # time before a resume counts
  try:
    while (step := _step(state)) < config.num_epochs * spe and not _early_stop(history, config):
      epoch = step // spe
      t0 = time.time()
      with jax.transfer_guard(guard):  # the epoch below moves nothing between host and device
        order = order_fn(state.step, state.rng)
        bar = tqdm(range(step % spe, spe), desc=f"epoch {epoch + 1}", leave=False,
                   disable=None, mininterval=1.0, unit="step")
        for i in bar:
          state, sums = train_batch(state, sums, images, labels, order)
          if stop.signum is not None:
            break
          if i % 100 == 99:
            jax.block_until_ready(sums["count"])  # keep the bar honest; reads nothing back
      # reliability: a signal after the epoch's last step waits for its evaluation and save
      # (stopping here would resume with this epoch's sums but never record the epoch)
      if stop.signum is not None and _step(state) % spe:
        _save_interrupted(mngr, state, sums, meta, workdir, stop.signum, log)
      eval_compiled.join()
      with jax.transfer_guard(guard):
        val = evaluate(state, val_batches, seeds, flip_tta)
      train = jax.device_get(sums)
      elapsed = time.time() - t0
      if np.any(train["nonfinite"] > 0) and not config.skip_nonfinite_updates:
        raise UserError(
            f"the training loss (or optimizer state) became non-finite at step "
            f"{int(np.min(train['first_nonfinite_step']))} (epoch {epoch + 1}); the last good "
            "checkpoint is kept. Lower the learning rate "
            f"(now {config.optimizer.learning_rate}) or set --config.skip_nonfinite_updates=True")
      record = _epoch_record(epoch + 1, _step(state), train, val)
      history.append(record)
      sums = jax.device_put(steps.zero_sums(seeds), replicated)
      checkpoint.save(mngr, _step(state), {"state": state, "sums": sums},
                      {"history": history, "train_wall_time_s": time.time() - t_start},
                      val_loss=record["val_loss"])
      images_per_s = float(np.sum(train["count"])) / elapsed
      writer.write(record, images_per_s=images_per_s, epoch_time_s=elapsed,
                   best=_best_epoch(history) == epoch + 1, num_epochs=config.num_epochs)
  finally:
    stop.restore()
    checkpoint.wait(mngr)  # never exit with a save in flight; a full disk becomes one line
  return _finish(config, workdir, mngr, state, history, writer, time.time() - t_start, log,
                 mesh)


def make_train_batch(config, steps_per_epoch, seeds=0, batch_sharding=None):
  """steps.make_train_batch with the config's loss, finiteness and augmentation settings."""
  return steps.make_train_batch(config.batch_size, steps_per_epoch, num_seeds=seeds,
                                batch_sharding=batch_sharding,
                                label_smoothing=config.label_smoothing,
                                skip_nonfinite=config.skip_nonfinite_updates,
                                augment_config=_augment_config(config))


def make_epoch_order(steps_per_epoch, num_examples, seeds=0):
  """jit((step, rng) -> the permutation of the epoch holding `step`), vmapped over seeds."""
  def epoch_order(step, rng):  # from (rng, epoch) alone, so a resume replays it
    return steps.epoch_permutation(rng, step // steps_per_epoch, num_examples)
  return jax.jit(jax.vmap(epoch_order) if seeds else epoch_order)


def _augment_config(config):
  """The config's augmentation block as plain Python values, or None when it does nothing."""
  aug = config.get("augment")
  aug = aug.to_dict() if aug is not None else {}
  active = aug.get("crop_padding", 0) or aug.get("flip", False) or aug.get("erase_prob", 0.0)
  return aug if active else None


def _step(state):
  """The host's copy of the step counter (all seeds of a stacked state share it)."""
  return int(np.max(jax.device_get(state.step)))


def _epoch_record(epoch, step, train, val):
  """One metrics.jsonl line; with several seeds, means plus a per-seed list of each metric."""
  per_seed = {
      "train_loss": train["loss"] / np.maximum(train["count"] - train["nonfinite"], 1),
      "train_accuracy": train["correct"] / train["count"],
      "val_loss": val["loss"], "val_accuracy": val["accuracy"]}
  record = {"epoch": epoch, "step": step, "nonfinite_steps": int(np.sum(train["nonfinite"]))}
  for key, value in per_seed.items():
    value = np.asarray(value, np.float64)
    record[key] = float(np.mean(value))
    if value.ndim:
      record[f"{key}_per_seed"] = [float(v) for v in value]
  return record


def _best_epoch(history):
  return min(history, key=lambda r: r["val_loss"])["epoch"] if history else 0


def _early_stop(history, config):
  patience = config.early_stopping_patience
  return bool(patience) and bool(history) and history[-1]["epoch"] - _best_epoch(history) >= patience


def _save_interrupted(mngr, state, sums, meta, workdir, signum, log):
  checkpoint.save(mngr, _step(state), {"state": state, "sums": sums}, meta)
  checkpoint.wait(mngr)
  name = signal.Signals(signum).name
  log(f"cnnlab: {name} received: saved step {_step(state)} to {workdir}/checkpoints; "
      f"resume with: ./launch.sh train --workdir={workdir} (and the same --config)")
  raise SystemExit(128 + signum)


def _finish(config, workdir, mngr, state, history, writer, wall, log, mesh):
  """Restore the best epoch, evaluate the test set once, write results.json."""
  seeds = runs.num_seeds(config)
  best = min(history, key=lambda r: r["val_loss"])
  try:
    tree, _ = checkpoint.restore(mngr, best["step"],
                                 {"state": state, "sums": steps.zero_sums(seeds)})
    best_state = tree["state"]
  except Exception as err:  # reliability: a damaged best step must not cost the whole run
    checkpoint.warn(f"the best epoch's checkpoint (step {best['step']}) is unusable "
                    f"({' '.join(str(err).split())[:160]}); testing the final weights "
                    f"(epoch {history[-1]['epoch']}) instead")
    best, best_state = history[-1], state
  best_state = jax.device_put(best_state, parallel.replicated(mesh))
  test = evaluate(best_state, eval_batches(*data.load_test(config), config.eval_batch_size,
                                           parallel.batch_sharded(mesh)), seeds,
                  config.get("eval_flip_tta", False))
  results = {"test_accuracy": float(np.mean(test["accuracy"])),
             "test_loss": float(np.mean(test["loss"])),
             "best_epoch": best["epoch"], "best_step": best["step"],
             "val_loss": best["val_loss"], "val_accuracy": best["val_accuracy"],
             "epochs": len(history), "stopped_early": len(history) < config.num_epochs,
             "train_wall_time_s": round(wall, 2)}
  if seeds:
    results.update(test_accuracy_std=float(np.std(test["accuracy"])),
                   test_accuracy_per_seed=[float(a) for a in test["accuracy"]],
                   test_loss_per_seed=[float(a) for a in test["loss"]],
                   seeds=[config.seed + i for i in range(seeds)])
  checkpoint.write_json(os.path.join(workdir, "results.json"), results)
  writer.close()
  spread = f" +- {results['test_accuracy_std']:.4f} over {seeds} seeds" if seeds else ""
  log(f"test accuracy {results['test_accuracy']:.4f}{spread} (loss {results['test_loss']:.4f}) "
      f"with the best epoch {best['epoch']} of {len(history)} "
      f"(val accuracy {best['val_accuracy']:.4f})")
  log(f"checkpoints: {workdir}/checkpoints  metrics: {workdir}/metrics.jsonl  "
      f"tensorboard: {workdir}/tensorboard  results: {workdir}/results.json")
  return results
