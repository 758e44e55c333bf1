"""train_and_evaluate(config, workdir): the epoch loop around the pure steps of steps.py.

Data lives on the device; each step gathers its own batch from a per-epoch permutation, and
metrics are summed on the device and read back once per epoch. Validation runs every epoch,
early stopping restores the best epoch's weights, and the test set is read and evaluated
exactly once, at the end. The workdir is locked, checkpointed every epoch and resumed from.
"""

import functools
import json
import math
import os
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from cnnlab import checkpoint, data, steps
from cnnlab.runs import build
from cnnlab.config_check import check_config, check_resume_config
from cnnlab.errors import UserError
from cnnlab.writers import MetricWriter


def eval_batches(images, labels, batch_size):
  """Device batches covering every example once: the last one padded and masked."""
  n = len(images)
  padded = math.ceil(n / batch_size) * batch_size
  pad = lambda a: np.concatenate([a, np.zeros((padded - n, *a.shape[1:]), a.dtype)])
  mask = np.arange(padded) < n
  imgs, labs, mask = (jax.device_put(pad(images)), jax.device_put(pad(labels)),
                      jax.device_put(mask))
  return [{"image": imgs[i:i + batch_size], "label": labs[i:i + batch_size],
           "mask": mask[i:i + batch_size]} for i in range(0, padded, batch_size)]


def evaluate(state, batches):
  """Mean loss and accuracy over prepared eval batches (one host read at the end)."""
  sums = steps.zero_eval_sums()
  for batch in batches:
    sums = steps.eval_accumulate(state, sums, batch)
  sums = jax.device_get(sums)
  return {"loss": float(sums["loss"] / sums["count"]),
          "accuracy": float(sums["correct"] / sums["count"])}


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
  splits = data.load_train_validation(config)
  train_images, train_labels = splits["train"]
  check_config(config, num_train=len(train_images))
  spe = len(train_images) // config.batch_size  # the last partial batch is dropped
  model, state = build(config, spe)

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
    restored = checkpoint.restore_latest_good(mngr, {"state": state, "sums": steps.zero_sums()},
                                              log=checkpoint.warn, set_aside=True)
    if restored is None:
      raise UserError(f"no usable checkpoint in {workdir}/checkpoints (all failed their "
                      "checks); move it away or choose a new --workdir")
    (tree, meta) = restored
    state, sums = tree["state"], tree["sums"]
    log(f"resuming {workdir} from step {int(state.step)} "
        f"(epoch {int(state.step) // spe + 1}, batch {int(state.step) % spe})")
  else:
    sums = steps.zero_sums()
  if not os.path.exists(config_path):
    checkpoint.write_json(config_path, json.loads(config.to_json_best_effort()))

  history = meta["history"]
  writer = MetricWriter(workdir, history)
  val_batches = eval_batches(*splits["validation"], config.eval_batch_size)
  images, labels = jax.device_put(train_images), jax.device_put(train_labels)
  train_batch = steps.make_train_batch(config.batch_size, spe,
                                       label_smoothing=config.label_smoothing,
                                       skip_nonfinite=config.skip_nonfinite_updates)
  order_fn = jax.jit(lambda s, rng: steps.epoch_permutation(rng, s // spe, len(train_images)))
  state, sums = jax.device_put((state, sums))  # e.g. TrainState.create leaves step a Python int
  guard = config.transfer_guard or "allow"
  stop = _StopFlag()
  t_start = time.time()
  try:
    while (step := int(state.step)) < config.num_epochs * spe and not _early_stop(history, config):
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
            sums["count"].block_until_ready()  # keep the bar honest; reads nothing back
      # reliability: a signal after the epoch's last step waits for its evaluation and save
      # (stopping here would resume with this epoch's sums but never record the epoch)
      if stop.signum is not None and int(state.step) % spe:
        _save_interrupted(mngr, state, sums, meta, workdir, stop.signum, log)
      with jax.transfer_guard(guard):
        val = evaluate(state, val_batches)
      train = jax.device_get(sums)
      elapsed = time.time() - t0
      if train["nonfinite"] > 0 and not config.skip_nonfinite_updates:
        raise UserError(
            f"the training loss (or optimizer state) became non-finite at step "
            f"{int(train['first_nonfinite_step'])} (epoch {epoch + 1}); the last good "
            "checkpoint is kept. Lower the learning rate "
            f"(now {config.optimizer.learning_rate}) or set --config.skip_nonfinite_updates=True")
      record = {"epoch": epoch + 1, "step": int(state.step),
                "train_loss": float(train["loss"] / max(train["count"] - train["nonfinite"], 1)),
                "train_accuracy": float(train["correct"] / train["count"]),
                "val_loss": val["loss"], "val_accuracy": val["accuracy"],
                "nonfinite_steps": int(train["nonfinite"])}
      history.append(record)
      sums = steps.zero_sums()
      checkpoint.save(mngr, int(state.step), {"state": state, "sums": sums},
                      {"history": history}, val_loss=val["loss"])
      writer.write(record, images_per_s=float(train["count"]) / elapsed, epoch_time_s=elapsed,
                   best=_best_epoch(history) == epoch + 1, num_epochs=config.num_epochs)
  finally:
    stop.restore()
    checkpoint.wait(mngr)  # never exit with a save in flight; a full disk becomes one line
  return _finish(config, workdir, mngr, state, history, writer, time.time() - t_start, log)


def _best_epoch(history):
  return min(history, key=lambda r: r["val_loss"])["epoch"] if history else 0


def _early_stop(history, config):
  patience = config.early_stopping_patience
  return bool(patience) and bool(history) and history[-1]["epoch"] - _best_epoch(history) >= patience


def _save_interrupted(mngr, state, sums, meta, workdir, signum, log):
  checkpoint.save(mngr, int(state.step), {"state": state, "sums": sums}, meta)
  checkpoint.wait(mngr)
  name = signal.Signals(signum).name
  log(f"cnnlab: {name} received: saved step {int(state.step)} to {workdir}/checkpoints; "
      f"resume with: ./launch.sh train --workdir={workdir} (and the same --config)")
  raise SystemExit(128 + signum)


def _finish(config, workdir, mngr, state, history, writer, wall, log):
  """Restore the best epoch, evaluate the test set once, write results.json."""
  best = min(history, key=lambda r: r["val_loss"])
  tree, _ = checkpoint.restore(mngr, best["step"], {"state": state, "sums": steps.zero_sums()})
  best_state = tree["state"]
  test = evaluate(best_state, eval_batches(*data.load_test(config), config.eval_batch_size))
  results = {"test_accuracy": test["accuracy"], "test_loss": test["loss"],
             "best_epoch": best["epoch"], "best_step": best["step"],
             "val_loss": best["val_loss"], "val_accuracy": best["val_accuracy"],
             "epochs": len(history), "stopped_early": len(history) < config.num_epochs,
             "train_wall_time_s": round(wall, 2)}
  checkpoint.write_json(os.path.join(workdir, "results.json"), results)
  writer.close()
  log(f"test accuracy {test['accuracy']:.4f} (loss {test['loss']:.4f}) with the best epoch "
      f"{best['epoch']} of {len(history)} (val accuracy {best['val_accuracy']:.4f})")
  log(f"checkpoints: {workdir}/checkpoints  metrics: {workdir}/metrics.jsonl  "
      f"tensorboard: {workdir}/tensorboard  results: {workdir}/results.json")
  return results
