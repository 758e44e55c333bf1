"""A run's life across commands: fresh, resumed, extended on purpose, finished.

- `saved_config`: a workdir holding a run resumes with its own config.json (plus overrides).
- `check_resume`: a config given on resume may change only the fields set on purpose, and
  never the run's identity (RUN_IDENTITY).
- `begin`: a finished run stays finished unless those changes give it epochs to train (its
  results.json is then set aside); what changed on purpose becomes the run's config.json.
- `early_stop`: when a run is finished before num_epochs.

train_and_evaluate calls `begin` once, before any data or model is built; cli/train calls
`saved_config` before JAX starts (so this module imports neither JAX nor the models).
"""

from cnnlab import rundir
from cnnlab.errors import UserError
from cnnlab.train.epoch_log import logger

# Fields that define a run's trajectory: a resume must not change them.
RUN_IDENTITY = ("dataset", "model", "optimizer", "batch_size", "seed", "split_seed",
                "validation_fraction", "train_size", "label_smoothing", "num_seeds",
                "augment", "dtype", "image_size", "test_fraction", "skip_bad_images")
# Where and how the data is read, not what it is: never compared on resume.
LOCATION = ("data_dir", "input", "input_budget_mib", "input_workers", "input_cache")


def saved_config(workdir, overrides):
  """The config.json of the run in `workdir` with `overrides` ({"a.b": value}) applied, or
  None when the workdir holds no run. Override values come parsed against the default config
  file (ml_collections), so they have the types of its fields."""
  run = rundir.Run(workdir)
  if not run.has_config:
    return None
  config = run.read_config()
  try:
    config.update_from_flattened_dict(overrides)
  except (KeyError, TypeError, ValueError) as err:
    raise UserError(f"cannot apply {', '.join(f'--config.{k}' for k in overrides)} to the "
                    f"config.json of {workdir} ({' '.join(str(err).split())})") from None
  return config


def check_resume(saved, config, workdir, on_purpose=()):
  """The differences between `config` and a run's saved config.json that a resume may make:
  {field: (saved, new)}. Any other difference is one UserError naming every such field.

  The run's identity (RUN_IDENTITY) never changes. Any other field may change when the caller
  sets it on purpose (`on_purpose`: dotted names, the command line's --config.FIELD
  overrides), e.g. num_epochs to extend a run; a config file that merely differs is refused,
  so nothing changes by accident. Fields the saved config lacks (added since it was written)
  and the data's location (LOCATION) are not compared.
  """
  old, new = rundir.flatten(saved), rundir.flatten(rundir.config_json(config))
  added = {k for k in new if k.split(".")[0] in RUN_IDENTITY and k.split(".")[0] in saved}
  differ = sorted(k for k in set(old) | added
                  if k not in LOCATION and old.get(k, _ABSENT) != new.get(k, _ABSENT))
  identity = [k for k in differ if k.split(".")[0] in RUN_IDENTITY]
  unasked = [k for k in differ if k not in identity and k not in on_purpose]
  if identity or unasked:
    show = lambda tree, k: repr(tree[k]) if k in tree else "absent"
    fields = ", ".join(f"{k} ({show(old, k)}, now {show(new, k)})" for k in identity + unasked)
    fix = (f"resume it with ./launch.sh train --workdir={workdir} (it uses its own config.json)"
           + (f", or pass --workdir={workdir} {' '.join(f'--config.{k}=...' for k in unasked)}"
              " to change it on purpose" if unasked and not identity else "")
           + ", or use a new --workdir")
    raise UserError(f"workdir {workdir!r} holds a run with a different {fields}; {fix}")
  return {k: (old.get(k), new.get(k)) for k in differ}


_ABSENT = object()


def early_stop(history, config):
  """True once `early_stopping_patience` epochs passed without a better validation loss."""
  patience = config.early_stopping_patience
  return (bool(patience) and bool(history)
          and history[-1]["epoch"] - rundir.best(history)["epoch"] >= patience)


def begin(run, config, resume, on_purpose):
  """None when `run` is to be trained (fresh, resumed or extended), else the results of a
  finished run that stays finished.

  A finished run is trained on only when changes made on purpose give it epochs to train: a
  larger num_epochs, or for an early-stopped run a patience that no longer stops it at its
  last epoch (a larger num_epochs alone would stop again at once: refused with the fix). Its
  results.json is then kept as results-epoch<E>.json. Changes are written to config.json
  and said.
  """
  changes = {}
  if resume and run.has_config and run.has_checkpoints:
    changes = check_resume(run.read_config_json(), config, run.dir, on_purpose)
  if run.finished and _stays_finished(config, run, changes):
    return run.read_results()
  if changes:
    _record_changes(config, run, changes)
  return None


def _stays_finished(config, run, changes):
  """True for a finished run that stays so (said, with how to train it on); False when the
  changes give it epochs to train (its results.json is set aside first)."""
  history, results = run.history(), run.read_results()
  trained, patience = len(history), config.early_stopping_patience
  stops = early_stop(history, config)
  if changes and trained < config.num_epochs and not stops:
    kept = run.set_results_aside(trained)
    logger.info(f"extending {run.dir} from {trained} to {config.num_epochs} epochs (its "
                f"previous results are kept in {kept})")
    return False
  if stops and "num_epochs" in changes:
    raise UserError(f"{run.dir!r} has had no better validation loss for {patience} epochs, so "
                    "early stopping would end it at once; to train on, also pass "
                    f"--config.early_stopping_patience=K (K > {patience}, 0 = off)")
  more = f"./launch.sh train --workdir={run.dir} --config."
  how = (f"{more}early_stopping_patience=0 (or more than {patience})" if stops
         else f"{more}num_epochs=N (N > {trained})")
  early = ", stopped early" if results.get("stopped_early") else ""
  logger.info(f"{run.dir} holds a finished run (test accuracy {results['test_accuracy']:.4f}, "
              f"{trained} epochs{early}); nothing to do. To train it on: {how}; to train "
              "again: a new --workdir.")
  return True


def _record_changes(config, run, changes):
  """Write the config changed on purpose as the run's own, and say what changed."""
  trained = len(run.history())
  if config.num_epochs < trained:
    raise UserError(f"{run.dir!r} has trained {trained} epochs already; pass "
                    f"--config.num_epochs={trained} or more")
  run.write_config(config)
  said = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in sorted(changes.items()))
  logger.info(f"changed on purpose: {said} (now the run's config: {run.config_path})")
  schedule = config.optimizer.get("schedule", "constant")
  if "num_epochs" in changes and schedule != "constant":
    logger.info(f"note: the {schedule} learning-rate schedule spans num_epochs: from here on "
                f"it follows the {config.num_epochs}-epoch schedule, so the result differs from "
                f"a run trained for {config.num_epochs} epochs from the start")
