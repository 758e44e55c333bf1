"""train_and_evaluate(config, workdir): prepare -> resume -> epochs -> finish.

The workdir (rundir.Run) is locked, checkpointed after every epoch and resumed from; the
epochs themselves run in epochs.run_epochs, whose hook here records the epoch, saves it and
decides on early stopping. The test set is read and evaluated exactly once, at the end.
"""

import functools
import signal
import time

import numpy as np

from cnnlab import checkpoint, data, parallel, rundir
from cnnlab import config as config_lib
from cnnlab.errors import UserError, is_disk_full, warn
from cnnlab.train import profile
from cnnlab.train import state as state_lib
from cnnlab.train import step as step_lib
from cnnlab.train.epoch_log import epoch_log
from cnnlab.train.epochs import StopFlag, host_step, make_job, run_epochs
from cnnlab.train.evaluate import eval_batches, evaluate

log_line = functools.partial(print, flush=True)


def early_stop(history, config):
  """True once `early_stopping_patience` epochs passed without a better validation loss."""
  patience = config.early_stopping_patience
  return (bool(patience) and bool(history)
          and history[-1]["epoch"] - checkpoint.best(history)["epoch"] >= patience)


def train_and_evaluate(config, workdir, resume=True, log=log_line, explicit=()):
  """Train `config` in `workdir` (resuming when it holds checkpoints); return the results.

  A resume must match the run's config.json (config.check_resume): fields in `explicit` (the
  command line's --config.FIELD overrides) may change on purpose, except the run's identity,
  and are written to config.json and said in the output. A finished run is trained on only
  when such changes give it epochs to train: a larger num_epochs, or for an early-stopped
  run a patience that no longer stops it at its last epoch (a larger num_epochs alone would
  stop again at once: that is refused with the fix). Its results.json is kept as
  results-epoch<E>.json and a new one written at the end. Without changes a finished run
  is not retrained.
  """
  config_lib.check(config)
  run = rundir.Run(workdir, primary=parallel.is_primary())  # multi-process: process 0 writes
  log = log if run.primary else (lambda *args: None)
  stop = StopFlag()  # before the directory and its lock exist: from here Ctrl-C is a flag
  try:
    with run.created(), run.lock():
      changes = {}
      if resume and run.has_config and run.has_checkpoints:
        changes = config_lib.check_resume(run.read_saved_config(), config, run.dir, explicit)
      if run.finished and _stays_finished(config, run, changes, log):
        return run.read_results()
      if changes:
        _record_changes(config, run, changes, log)
      return _train(config, run, resume, log, stop)
  except OSError as err:  # reliability: a full disk anywhere (metrics, events) is one line
    if not is_disk_full(err):
      raise
    raise UserError(f"no space left on device while writing {err.filename or workdir}; "
                    "the checkpoints are kept: free space and resume") from None
  finally:
    stop.restore()


def _stays_finished(config, run, changes, log):
  """True for a finished run that stays so (said, with how to train it on); False when the
  changes give it epochs to train (its results.json is set aside first)."""
  history, results = run.history(), run.read_results()
  trained, patience = len(history), config.early_stopping_patience
  stops = early_stop(history, config)
  if changes and trained < config.num_epochs and not stops:
    kept = run.set_results_aside(trained)
    log(f"extending {run.dir} from {trained} to {config.num_epochs} epochs (its previous "
        f"results are kept in {kept})")
    return False
  if stops and "num_epochs" in changes:
    raise UserError(f"{run.dir!r} has had no better validation loss for {patience} epochs, so "
                    "early stopping would end it at once; to train on, also pass "
                    f"--config.early_stopping_patience=K (K > {patience}, 0 = off)")
  more = f"./launch.sh train --workdir={run.dir} --config."
  how = (f"{more}early_stopping_patience=0 (or more than {patience})" if stops
         else f"{more}num_epochs=N (N > {trained})")
  log(f"{run.dir} holds a finished run (test accuracy {results['test_accuracy']:.4f}, "
      f"{trained} epochs{', stopped early' if results.get('stopped_early') else ''}); nothing "
      f"to do. To train it on: {how}; to train again: a new --workdir.")
  return True


def _record_changes(config, run, changes, log):
  """Write the config changed on purpose as the run's own, and say what changed."""
  trained = len(run.history())
  if config.num_epochs < trained:
    raise UserError(f"{run.dir!r} has trained {trained} epochs already; pass "
                    f"--config.num_epochs={trained} or more")
  run.write_config(config)
  said = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in sorted(changes.items()))
  log(f"changed on purpose: {said} (now the run's config: {run.config_path})")
  schedule = config.optimizer.get("schedule", "constant")
  if "num_epochs" in changes and schedule != "constant":
    log(f"note: the {schedule} learning-rate schedule spans num_epochs: from here on it follows "
        f"the {config.num_epochs}-epoch schedule, so the result differs from a run trained for "
        f"{config.num_epochs} epochs from the start")


def _train(config, run, resume, log, stop):
  """prepare -> resume -> epochs -> finish, in a locked run directory.

  Ctrl-C and SIGTERM only set a flag (`stop`, made before the run directory and its lock):
  a KeyboardInterrupt raised inside JAX's start-up could be lost (a run interrupted under
  load trained to the end; once more when the flag was set up only after the lock existed).
  Flagged in start-up, the run stops before training (nothing new to save; Run.created
  removes a directory it created); once training, it saves the step it reached and exits.
  """
  mngr = None
  try:
    splits = data.load_train_validation(config)
    config_lib.check_fits(config, len(splits["train"][0]))
    mesh = parallel.make_mesh(config.num_devices)
    spe = len(splits["train"][0]) // config.batch_size
    _, state = state_lib.build(config, spe, splits["train"][0])
    mngr = checkpoint.manager(run.checkpoints_dir)
    state, sums, history, wall = _resume(run, mngr, config, state, spe, resume, log)
    stop.raise_if_set()
    if not mngr.all_steps():  # a fresh start: this config is the run's
      run.write_config(config)
    epochs = epoch_log(run, history, log)
    job = make_job(config, mesh, splits["train"], splits["validation"])
    job = profile.traced(job, host_step(state), run.dir)  # config.profile_steps: W/profile/
    state, sums = parallel.put((state, sums), job.replicated)
    t_start = time.time() - wall  # time before a resume counts
    stop.raise_if_set()
    if not early_stop(history, config):
      hook = _epoch_hook(config, epochs, mngr, history, t_start)
      interrupted = functools.partial(_save_interrupted, mngr, run, stop, t_start, log)
      state, _ = run_epochs(job, state, sums, hook, stop, interrupted)
  finally:
    if mngr is not None:
      checkpoint.wait(mngr)  # never exit with a save in flight; a full disk becomes one line
  results = _finish(config, job, mngr, state, history, time.time() - t_start)
  run.write_results(results)
  epochs.write_hparams(results)
  epochs.close()
  _report(results, run, log)
  return results


def _resume(run, mngr, config, state, spe, resume, log):
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
  log(f"resuming {run.dir} from step {step} (epoch {step // spe + 1}, batch {step % spe})")
  return state, sums, history, meta.get("train_wall_time_s", 0.0)


def _epoch_hook(config, epochs, mngr, history, t_start):
  """After each epoch: refuse non-finite training, record the epoch, save, early stop?"""

  def on_epoch(state, sums, record, train, seconds):
    if np.any(train["nonfinite"] > 0) and not config.skip_nonfinite_updates:
      raise UserError(
          f"the training loss (or optimizer state) became non-finite at step "
          f"{int(np.min(train['first_nonfinite_step']))} (epoch {record['epoch']}); the last "
          f"good checkpoint is kept. Lower the learning rate "
          f"(now {config.optimizer.learning_rate}) or set --config.skip_nonfinite_updates=True")
    history.append(record)
    epochs.write(record, images_per_s=float(np.sum(train["count"])) / seconds,
                 epoch_time_s=seconds, best=checkpoint.best(history) is record,
                 num_epochs=config.num_epochs)
    checkpoint.save(mngr, record["step"], state, sums,
                    {"train_wall_time_s": time.time() - t_start}, val_loss=record["val_loss"])
    return early_stop(history, config)

  return on_epoch


def _save_interrupted(mngr, run, stop, t_start, log, state, sums):
  step = host_step(state)
  checkpoint.save(mngr, step, state, sums, {"train_wall_time_s": time.time() - t_start})
  checkpoint.wait(mngr)
  name = signal.Signals(stop.signum).name
  log(f"cnnlab: {name} received: saved step {step} to {run.checkpoints_dir}; "
      f"resume with: ./launch.sh train --workdir={run.dir}")
  raise SystemExit(128 + stop.signum)


def _finish(config, job, mngr, state, history, wall):
  """Restore the best epoch and evaluate the test set once: the run's results."""
  best = checkpoint.best(history)
  try:
    best_state, _, _ = checkpoint.restore(mngr, best["step"], state,
                                          step_lib.zero_sums(job.seeds))
  except Exception as err:  # reliability: a damaged best step must not cost the whole run
    warn(f"the best epoch's checkpoint (step {best['step']}) is unusable "
         f"({' '.join(str(err).split())[:160]}); testing the final weights "
         f"(epoch {history[-1]['epoch']}) instead")
    best, best_state = history[-1], state
  test_batches = eval_batches(*data.load_test(config), config.eval_batch_size,
                              job.batch_sharding)
  test = evaluate(parallel.put(best_state, job.replicated), test_batches, job.seeds,
                  config.get("eval_flip_tta", False))
  results = {"test_accuracy": float(np.mean(test["accuracy"])),
             "test_loss": float(np.mean(test["loss"])),
             "best_epoch": best["epoch"], "best_step": best["step"],
             "val_loss": best["val_loss"], "val_accuracy": best["val_accuracy"],
             "epochs": len(history), "stopped_early": len(history) < config.num_epochs,
             "train_wall_time_s": round(wall, 2)}
  if job.seeds:
    results.update(test_accuracy_std=float(np.std(test["accuracy"])),
                   test_accuracy_per_seed=[float(a) for a in test["accuracy"]],
                   test_loss_per_seed=[float(a) for a in test["loss"]],
                   seeds=[config.seed + i for i in range(job.seeds)])
  return results


def _report(results, run, log):
  seeds = len(results.get("seeds", []))
  spread = f" +- {results['test_accuracy_std']:.4f} over {seeds} seeds" if seeds else ""
  log(f"test accuracy {results['test_accuracy']:.4f}{spread} (loss {results['test_loss']:.4f}) "
      f"with the best epoch {results['best_epoch']} of {results['epochs']} "
      f"(val accuracy {results['val_accuracy']:.4f})")
  log(run.describe())
