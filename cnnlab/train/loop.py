"""train_and_evaluate(config, workdir): one run, read top to bottom.

Check the config, lock the run directory, ask its lifecycle whether there is anything to
train (train/lifecycle.py), then: data -> state -> the latest good checkpoint -> the epochs
(after each: record, save, early stopping) -> the best epoch's test accuracy -> results.json.
The test set is read and evaluated exactly once, at the end.
"""

import functools
import signal
import time
from typing import Any, NamedTuple

import numpy as np

from cnnlab import checkpoint, data, parallel, rundir
from cnnlab import config as config_lib
from cnnlab.errors import UserError, is_disk_full, warn
from cnnlab.train import lifecycle, profile
from cnnlab.train import state as state_lib
from cnnlab.train import step as step_lib
from cnnlab.train.epoch_log import epoch_log, logger, logging_to
from cnnlab.train.epochs import StopFlag, host_step, make_job, run_epochs
from cnnlab.train.evaluate import eval_batches, evaluate

log_line = functools.partial(print, flush=True)


class _Saving(NamedTuple):
  """What run_epochs' hooks (_end_epoch, _save_and_exit) need besides the state."""
  config: Any
  run: rundir.Run
  epochs: Any  # epoch_log.EpochLog
  mngr: Any  # the Orbax checkpoint manager
  history: list  # the epoch records so far; _end_epoch appends
  t_start: float  # time.time() at the start, less the time trained before a resume
  stop: StopFlag


def train_and_evaluate(config, workdir, resume=True, log=log_line, on_purpose=()):
  """Train `config` in `workdir` (resuming it when it holds checkpoints); return the results.

  `on_purpose`: the fields a user set for this workdir (the command line's --config.FIELD
  overrides), which a resume may change (lifecycle.begin: extend a run, change patience).
  What the run says goes to `log`, one line at a time, from the primary process only.
  """
  config_lib.check(config)
  run = rundir.Run(workdir, primary=parallel.is_primary())  # multi-process: process 0 writes
  stop = StopFlag()  # before the directory and its lock exist: from here Ctrl-C is a flag
  try:
    with logging_to(log if run.primary else None), run.created(), run.lock():
      finished = lifecycle.begin(run, config, resume, on_purpose)
      return finished if finished is not None else _train(config, run, resume, stop)
  except OSError as err:  # reliability: a full disk anywhere (metrics, events) is one line
    if not is_disk_full(err):
      raise
    raise UserError(f"no space left on device while writing {err.filename or workdir}; "
                    "the checkpoints are kept: free space and resume") from None
  finally:
    stop.restore()


def _train(config, run, resume, stop):
  """data -> state -> resume -> epochs -> the best epoch's test, in a locked run directory.

  Ctrl-C and SIGTERM only set a flag (`stop`, made before the run directory and its lock):
  a KeyboardInterrupt raised inside JAX's start-up could be lost. Flagged in start-up, the
  run stops before training (nothing new to save; Run.created removes a directory it
  created); once training, it saves the step it reached and exits.
  """
  mngr = None
  try:
    splits = data.train_validation_inputs(config, state_lib.num_seeds(config))
    train = splits["train"]  # (images, labels), or a source in stream mode
    num_train = len(train[0] if isinstance(train, tuple) else train)
    config_lib.check_fits(config, num_train)
    steps_per_epoch = num_train // config.batch_size
    _, state = state_lib.build_fresh(config, steps_per_epoch, train)
    mngr = checkpoint.manager(run.checkpoints_dir, keep_lowest=rundir.BEST_METRIC)
    state, sums, history, wall = _resume(run, mngr, config, state, resume, steps_per_epoch)
    stop.raise_if_set()
    if not mngr.all_steps():  # a fresh start: this config is the run's
      run.write_config(config)
    epochs = epoch_log(run, history)
    job = make_job(config, parallel.make_mesh(config.num_devices), splits["train"],
                   splits["validation"])
    job = profile.traced(job, host_step(state), run.dir)  # config.profile_steps: W/profile/
    state, sums = parallel.put((state, sums), job.replicated)
    t_start = time.time() - wall  # time before a resume counts
    stop.raise_if_set()
    if not lifecycle.early_stop(history, config):
      saving = _Saving(config, run, epochs, mngr, history, t_start, stop)
      state, _ = run_epochs(job, state, sums, functools.partial(_end_epoch, saving), stop,
                            functools.partial(_save_and_exit, saving))
  finally:
    if mngr is not None:
      checkpoint.wait(mngr)  # never exit with a save in flight; a full disk becomes one line
  results = _test_best(config, job, mngr, state, history, time.time() - t_start)
  run.write_results(results)
  epochs.write_hparams(results)
  epochs.close()
  _report(results, run)
  return results


def _resume(run, mngr, config, state, resume, steps_per_epoch):
  """(state, sums, history, seconds trained) from the latest good checkpoint, if any."""
  sums = step_lib.zero_sums(state_lib.num_seeds(config))
  if not mngr.all_steps():
    return state, sums, [], 0.0
  if not resume:
    raise UserError(f"workdir {run.dir!r} already has checkpoints and --noresume was given; "
                    "choose a new --workdir (nothing there is overwritten)")
  if not run.has_config:  # reliability: never guess whose checkpoints these are
    raise UserError(f"workdir {run.dir!r} has checkpoints but no config.json, so they cannot "
                    "be checked against --config; restore config.json or use a new --workdir")
  restored = checkpoint.restore_latest_good(mngr, state, sums, log=warn,
                                            set_aside_to=run.unusable_dir)
  if restored is None:
    raise UserError(f"no usable checkpoint in {run.checkpoints_dir} (all failed their "
                    "checks); move it away or choose a new --workdir")
  state, sums, meta = restored
  step = host_step(state)
  history = [r for r in run.history() if r["step"] <= step]  # epochs the checkpoint holds
  logger.info(f"resuming {run.dir} from step {step} (epoch {step // steps_per_epoch + 1}, "
              f"batch {step % steps_per_epoch})")
  return state, sums, history, meta.get("train_wall_time_s", 0.0)


def _end_epoch(saving, state, sums, record, train, seconds):
  """run_epochs' hook: refuse non-finite training, record the epoch, save; early stop?"""
  config, history = saving.config, saving.history
  if np.any(train["nonfinite"] > 0) and not config.skip_nonfinite_updates:
    raise UserError(
        f"the training loss (or optimizer state) became non-finite at step "
        f"{int(np.min(train['first_nonfinite_step']))} (epoch {record['epoch']}); the last "
        f"good checkpoint is kept. Lower the learning rate "
        f"(now {config.optimizer.learning_rate}) or set --config.skip_nonfinite_updates=True")
  history.append(record)
  saving.epochs.write(record, images_per_s=float(np.sum(train["count"])) / seconds,
                      epoch_time_s=seconds, best=rundir.best(history) is record,
                      num_epochs=config.num_epochs)
  checkpoint.save(saving.mngr, record["step"], state, sums,
                  {"train_wall_time_s": time.time() - saving.t_start},
                  metrics={rundir.BEST_METRIC: float(record[rundir.BEST_METRIC])})
  return lifecycle.early_stop(history, config)


def _save_and_exit(saving, state, sums):
  """run_epochs' hook for a signal mid-epoch: save the step reached, say how to resume."""
  step, run, signum = host_step(state), saving.run, saving.stop.signum
  checkpoint.save(saving.mngr, step, state, sums,
                  {"train_wall_time_s": time.time() - saving.t_start})
  checkpoint.wait(saving.mngr)
  logger.info(f"cnnlab: {signal.Signals(signum).name} received: saved step {step} to "
              f"{run.checkpoints_dir}; resume with: ./launch.sh train --workdir={run.dir}")
  raise SystemExit(128 + signum)


def _test_best(config, job, mngr, state, history, wall):
  """Evaluate the test set once with the best epoch's weights (checkpoint.restore_best's
  rule: else the newest good step's): the run's results."""
  sums = step_lib.zero_sums(job.num_seeds)
  restored = checkpoint.restore_best(mngr, rundir.best(history)["step"], state, sums, log=warn)
  tested = restored and {r["step"]: r for r in history}.get(restored[2]["step"])
  if not tested:
    raise UserError(f"no epoch's checkpoint in {mngr.directory} is usable (all failed their "
                    "checks), so the test set cannot be evaluated; move them away and retrain")
  test_batches = eval_batches(*data.load_test(config), config.eval_batch_size,
                              job.batch_sharding)
  test = evaluate(parallel.put(restored[0], job.replicated), test_batches, job.num_seeds,
                  config.get("eval_flip_tta", False))
  results = {"test_accuracy": float(np.mean(test["accuracy"])),
             "test_loss": float(np.mean(test["loss"])),
             "best_epoch": tested["epoch"], "best_step": tested["step"],
             "val_loss": tested["val_loss"], "val_accuracy": tested["val_accuracy"],
             "epochs": len(history), "stopped_early": len(history) < config.num_epochs,
             "train_wall_time_s": round(wall, 2)}
  if parallel.stacked(job.num_seeds):
    results.update(test_accuracy_std=float(np.std(test["accuracy"])),
                   test_accuracy_per_seed=[float(a) for a in test["accuracy"]],
                   test_loss_per_seed=[float(a) for a in test["loss"]],
                   seeds=[config.seed + i for i in range(job.num_seeds)])
  return results


def _report(results, run):
  seeds = len(results.get("seeds", []))
  spread = f" +- {results['test_accuracy_std']:.4f} over {seeds} seeds" if seeds else ""
  logger.info(f"test accuracy {results['test_accuracy']:.4f}{spread} (loss "
              f"{results['test_loss']:.4f}) with the best epoch {results['best_epoch']} of "
              f"{results['epochs']} (val accuracy {results['val_accuracy']:.4f})")
  logger.info(run.describe())
