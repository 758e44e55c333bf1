"""Restore a trained run for inspection: its config, model and checked weights (never trains).

Restores are integrity-checked (cnnlab.checkpoint) and a workdir without what is needed gets
a UserError that says what to do. The saved parameter shapes are compared with the config's
model first, so a checkpoint of another model is one clear line, not a series of warnings.
"""

import functools

import jax
import numpy as np

from cnnlab import checkpoint, data, parallel, rundir
from cnnlab.errors import UserError, warn
from cnnlab.train import state as state_lib
from cnnlab.train import step as step_lib


def load_run(workdir, which="best", seed_index=0):
  """(config, model, state, meta) of a run's best or latest good step, checked against its
  config. For a multi-seed run the state of seed number `seed_index` is returned."""
  if which not in ("best", "latest"):
    raise UserError(f"unknown checkpoint choice {which!r}; choose 'best' or 'latest'")
  run = rundir.Run(workdir)
  config = run.read_config()
  _, variables = abstract_model(config, workdir)
  mngr = checkpoint.manager(run.checkpoints_dir, read_only=True)
  try:
    _check_saved_params(mngr, workdir, config, variables["params"])
    model, state, meta = _restore(run, mngr, config, which)
  finally:
    mngr.close()
  num_seeds = state_lib.num_seeds(config)
  if parallel.stacked(num_seeds):
    if not 0 <= seed_index < num_seeds:
      raise UserError(f"seed index {seed_index} is out of range: the run has "
                      f"{num_seeds} seeds (0..{num_seeds - 1})")
    state = jax.tree.map(lambda x: x[seed_index], state)
  return config, model, state, meta


def _restore(run, mngr, config, which):
  """(model, state, meta) of the best (lowest val loss) or latest good step of a run."""
  try:
    model, state = state_lib.build(config)
  except UserError as err:
    raise UserError(f"the config in {run.dir} cannot be built ({err})") from None
  if not mngr.all_steps():
    raise UserError(f"{run.dir!r} has no checkpoint yet; train first: "
                    f"./launch.sh train --workdir={run.dir}")
  sums = step_lib.zero_sums(state_lib.num_seeds(config))
  best = None
  if which == "best":  # the best epoch whose step is still on disk
    on_disk = set(mngr.all_steps())
    best = rundir.best([r for r in run.history() if r["step"] in on_disk])
  restored = checkpoint.restore_best(mngr, best and best["step"], state, sums, log=warn)
  if restored is None:
    raise UserError(f"no usable checkpoint in {run.checkpoints_dir}; retrain it")
  state, _, meta = restored
  return model, state, meta


def abstract_model(config, workdir="the run"):
  """(model, variables as ShapeDtypeStructs) of a config: shapes in milliseconds, no init.

  Enough to list layers and check inputs before the (seconds-long) build and restore.
  """
  try:
    model = state_lib.model_of(config)
  except UserError as err:
    raise UserError(f"the config.json of {workdir} cannot be built ({err})") from None
  x = jax.ShapeDtypeStruct((1, *data.image_shape(config)), np.float32)
  init = functools.partial(model.init, train=False)
  return model, jax.eval_shape(init, jax.ShapeDtypeStruct((2,), np.uint32), x)


def _check_saved_params(mngr, workdir, config, params):
  got = checkpoint.saved_param_shapes(mngr)
  if got is None:
    return  # no step yet (load_run says how to get one) or unreadable (restore will speak)
  want = jax.tree.map(lambda a: tuple(a.shape), params)
  if got != want:
    describe = lambda tree: ", ".join(f"{k} {tuple(v['kernel'])}" if "kernel" in v else k
                                      for k, v in tree.items())
    raise UserError(
        f"the checkpoints in {workdir} hold another model than its config.json describes "
        f"(model {config.model.name!r}: {describe(want)}; checkpoint: {describe(got)}); "
        "pass the workdir the checkpoint was trained in, or restore its config.json")
