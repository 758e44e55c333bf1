"""A run on disk -> (config, model, state): how viz, predict and sweeps read finished work.

Only reads: nothing here trains or writes. Restores are checked (checkpoint.restore), and a
workdir without what is needed gets a UserError that says what to do.
"""

import os

import jax
import ml_collections

from cnnlab import checkpoint, data, parallel, steps
from cnnlab.errors import UserError
from cnnlab.models import create_model_from_config


def build(config, steps_per_epoch=1):
  """(model, initial TrainState) of a config; also the restore target for saved runs.

  `steps_per_epoch` only sets the length of learning-rate schedules, not any array shape.
  """
  model = create_model_from_config(config.model, len(data.class_names(config.dataset)))
  tx = steps.make_optimizer(config.optimizer, config.num_epochs * steps_per_epoch)
  create = lambda key: steps.create_train_state(model, tx, key, data.image_shape(config.dataset))
  if num_seeds(config):  # one stacked state: seed, seed+1, ... (vmapped training)
    return model, parallel.stack_seeds(create, [config.seed + i for i in range(num_seeds(config))])
  return model, create(jax.random.PRNGKey(config.seed))


def num_seeds(config):
  """0 for an ordinary run, S > 1 for S seeds trained together (stacked, vmapped)."""
  n = config.get("num_seeds", 1)
  return n if n > 1 else 0


def load_config(workdir):
  """The ConfigDict saved in `workdir/config.json`."""
  path = os.path.join(workdir, "config.json")
  if not os.path.isdir(workdir):
    raise UserError(f"workdir {workdir!r} does not exist; pass the --workdir of a training run")
  if not os.path.exists(path):
    raise UserError(f"{workdir!r} has no config.json, so it is not a cnnlab run (or it was "
                    "damaged); pass the --workdir of a training run")
  try:
    return ml_collections.ConfigDict(checkpoint.read_json(path))
  except ValueError as err:
    raise UserError(f"{path} is not valid JSON ({err}); restore it from a backup") from None


def history(workdir):
  """Per-epoch metrics of a run (metrics.jsonl), possibly empty."""
  return checkpoint.read_jsonl(os.path.join(workdir, "metrics.jsonl"))


def restore(workdir, which="best", seed_index=0):
  """(config, model, state, meta) of a run's best (lowest val loss) or latest good step.

  For a multi-seed run the state of seed number `seed_index` is returned.
  """
  config, model, state, meta = _restore(workdir, which)
  if num_seeds(config):
    if not 0 <= seed_index < num_seeds(config):
      raise UserError(f"seed index {seed_index} is out of range: the run has "
                      f"{num_seeds(config)} seeds (0..{num_seeds(config) - 1})")
    state = jax.tree.map(lambda x: x[seed_index], state)
  return config, model, state, meta


def _restore(workdir, which):
  config = load_config(workdir)
  try:
    model, state = build(config)
  except UserError as err:
    raise UserError(f"the config in {workdir} cannot be built ({err})") from None
  mngr = checkpoint.manager(workdir, read_only=True)
  all_steps = mngr.all_steps()
  if not all_steps:
    raise UserError(f"{workdir!r} has no checkpoint yet; train first: "
                    f"./launch.sh train --workdir={workdir}")
  target = {"state": state, "sums": steps.zero_sums(num_seeds(config))}
  if which == "best":
    done = [r for r in history(workdir) if r["step"] in all_steps]
    if done:
      step = min(done, key=lambda r: r["val_loss"])["step"]
      try:
        tree, meta = checkpoint.restore(mngr, step, target)
        return config, model, tree["state"], meta
      except Exception as err:  # fall back to the latest good step, but say so
        checkpoint.warn(f"cnnlab: warning: best checkpoint step {step} is unusable ({err}); "
                        "using the latest good one")
  try:
    restored = checkpoint.restore_latest_good(mngr, target, log=checkpoint.warn)
  except (ValueError, KeyError) as err:
    raise UserError(f"the checkpoints in {workdir} do not match its config.json (another model "
                    f"or config?): {err}") from None
  if restored is None:
    raise UserError(f"no usable checkpoint in {workdir}/checkpoints; retrain it")
  tree, meta = restored
  return config, model, tree["state"], meta
