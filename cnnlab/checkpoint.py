"""Checkpoints: Orbax for the arrays, plus what Orbax does not do.

Orbax writes atomically (a step directory only gets its final name when complete) but never
checks content, has no lock, and can rotate away the newest step when asked to keep the best.
So each step also stores a JSON record with a SHA-256 digest of the arrays; a restore that
does not match (or holds NaN) falls back to the previous good step.

This module owns the saved tree ({"state": TrainState, "sums": running epoch sums}) and the
fallback rule (the best step, else the newest good one). Where the steps live and which step
is best are the caller's (rundir.Run.checkpoints_dir, rundir.best); it imports only errors.
"""

import hashlib
import os
import shutil
import weakref

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import serialization

from cnnlab.errors import UserError, is_disk_full

_pending = weakref.WeakKeyDictionary()  # manager -> step of its save still in flight
# What Orbax and TensorStore raise for a damaged, incomplete or foreign step (measured: bytes
# flipped or truncated, JSON garbled -> ValueError; an item missing -> KeyError; a file gone
# -> OSError). Anything else is a bug and keeps its traceback.
_UNREADABLE = (ValueError, KeyError, OSError)


class Unusable(ValueError):
  """A step that cannot be restored as saved (damaged, incomplete, of another tree)."""


def digest(tree):
  """SHA-256 over a pytree's leaves (host arrays), in tree order."""
  h = hashlib.sha256()
  for leaf in jax.tree.leaves(tree):
    a = np.ascontiguousarray(np.asarray(leaf))
    h.update(str((a.dtype, a.shape)).encode())
    h.update(a.tobytes())
  return h.hexdigest()


def all_finite(tree):
  return all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(tree)
             if np.issubdtype(np.asarray(x).dtype, np.floating))


def manager(directory, read_only=False, keep_lowest=None):
  """An Orbax manager over `directory` keeping the 2 latest steps, and with `keep_lowest`
  (the name of a metric saved with each step) also the step where it is lowest."""
  keep = [ocp.checkpoint_managers.LatestN(2)]
  if keep_lowest:
    keep.append(ocp.checkpoint_managers.BestN(get_metric_fn=lambda m: -m[keep_lowest], n=1,
                                              keep_checkpoints_without_metrics=False))
  policy = ocp.checkpoint_managers.AnyPreservationPolicy(keep)
  # best_fn makes Orbax write each step's metrics to disk: without it a resumed run's manager
  # sees no metrics on the earlier steps and deletes the best one (an Orbax pitfall).
  best = dict(best_fn=lambda m: m[keep_lowest], best_mode="min") if keep_lowest else {}
  options = ocp.CheckpointManagerOptions(preservation_policy=policy, **best,
                                         create=not read_only,
                                         cleanup_tmp_directories=not read_only,
                                         read_only=read_only)
  mngr = ocp.CheckpointManager(os.path.abspath(directory), item_names=("state", "meta"),
                               options=options)
  # Orbax removes old temporary directories on a background thread. Wait for it: a run that
  # exits right after (a bad --noresume, a resume of another model) raced the interpreter's
  # shutdown and logged a traceback ("cannot schedule new futures after shutdown").
  getattr(mngr, "_maybe_await_cleanup_tmp_directory", lambda: None)()
  return mngr


def _disk_full_error(mngr, step):
  step = "a checkpoint" if step is None else f"checkpoint step {step}"
  return UserError(f"no space left on device while saving {step} to "
                   f"{mngr.directory}; the previous checkpoints are kept: free space and resume "
                   "(run the same command again)")


def wait(mngr):
  """Block until the save in flight is on disk (Orbax saves in the background).

  Every exit path must call this, or the last checkpoint is lost silently. A full disk
  surfaces here (or in the next save) and becomes a UserError naming the step.
  """
  step = _pending.pop(mngr, None)
  try:
    mngr.wait_until_finished()
  except Exception as err:
    if is_disk_full(err):
      raise _disk_full_error(mngr, step) from None
    raise


def save(mngr, step, state, sums, meta, metrics=None):
  """Save host copies of the training state and epoch sums, and `meta` (JSON), as `step`;
  `metrics` ({name: float}) are what the manager's keep_lowest reads.

  Non-finite trees are refused: rotation would otherwise push good steps out.
  """
  host = jax.device_get(serialization.to_state_dict({"state": state, "sums": sums}))
  if not all_finite(host):
    raise UserError(f"refusing to checkpoint non-finite weights at step {step}; the last good "
                    "checkpoint is kept. Lower the learning rate or set "
                    "--config.skip_nonfinite_updates=True")
  meta = dict(meta, step=int(step), digest=digest(host))
  wait(mngr)  # an error of the previous save is reported with that save's step
  try:
    mngr.save(int(step), args=ocp.args.Composite(state=ocp.args.StandardSave(host),
                                                 meta=ocp.args.JsonSave(meta)),
              metrics=metrics, force=True)
  except Exception as err:
    if is_disk_full(err):
      raise _disk_full_error(mngr, step) from None
    raise
  _pending[mngr] = int(step)


def restore(mngr, step, state, sums):
  """(state, sums, meta) of `step`, shaped like the templates and checked against its digest.

  Raises Unusable when the step cannot be read or fails its checks.
  """
  target = {"state": state, "sums": sums}
  template = jax.device_get(serialization.to_state_dict(target))
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype),
                          template)
  try:
    out = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                     meta=ocp.args.JsonRestore()))
  except _UNREADABLE as err:
    raise Unusable(" ".join(str(err).split())) from err
  host, meta = jax.device_get(out["state"]), out["meta"]
  _check_shapes(host, abstract)  # Orbax restores a host array in its saved shape, not the target's
  if meta.get("digest") != digest(host):
    raise Unusable("its contents do not match the digest saved with it")
  if not all_finite(host):
    raise Unusable("it holds non-finite values")
  tree = serialization.from_state_dict(target, host)
  return tree["state"], tree["sums"], meta


def _check_shapes(host, abstract):
  saved = jax.tree_util.tree_leaves_with_path(host)
  wanted = jax.tree_util.tree_leaves_with_path(abstract)
  for (path, got), (_, want) in zip(saved, wanted):
    if np.shape(got) != want.shape:
      raise Unusable(f"it holds {jax.tree_util.keystr(path)} of shape {np.shape(got)}, where "
                     f"the model of config.json has {want.shape}")


def restore_latest_good(mngr, state, sums, log=print, set_aside_to=None):
  """Restore the newest step that passes its checks: (state, sums, meta), or None.

  An unusable step is reported in one line and skipped (never deleted: a person may want
  it); any other error is a bug and propagates. With `set_aside_to` (a run about to train
  on), the skipped newer steps are moved into that directory once a good step is found,
  since Orbax never overwrites a step and would refuse to save that step number again. If
  no step is good, nothing moves: that is more likely a config mismatch than corruption.
  """
  bad = []
  for step in sorted(mngr.all_steps(), reverse=True):
    try:
      restored = restore(mngr, step, state, sums)
    except Unusable as err:
      log(f"cnnlab: warning: checkpoint step {step} in {mngr.directory} is unusable "
          f"({str(err)[:160]}); trying the previous one")
      bad.append(step)
      continue
    if set_aside_to and bad:
      _set_aside(mngr, bad, set_aside_to, log)
    return restored
  return None


def restore_best(mngr, best_step, state, sums, log=print):
  """The one fallback rule: `best_step` if it is on disk and good, else the newest good step
  (said in one line); (state, sums, meta) or None. best_step None: the newest good step."""
  if best_step is not None and best_step in mngr.all_steps():
    try:
      return restore(mngr, best_step, state, sums)
    except Unusable as err:
      log(f"cnnlab: warning: the best checkpoint step {best_step} is unusable "
          f"({str(err)[:160]}); using the latest good one")
  return restore_latest_good(mngr, state, sums, log=log)


def _set_aside(mngr, steps, directory, log):
  for step in steps:
    dest = os.path.join(directory, str(step))
    n = 1
    while os.path.exists(dest):
      dest, n = os.path.join(directory, f"{step}.{n}"), n + 1
    os.makedirs(directory, exist_ok=True)
    shutil.move(os.path.join(str(mngr.directory), str(step)), dest)
    log(f"cnnlab: warning: moved unusable checkpoint step {step} to {dest}")
  mngr.reload()


def saved_param_shapes(mngr):
  """{layer: {name: shape}} of the newest step's parameters, read from Orbax's metadata
  without restoring anything; None when there is no step or its metadata is unreadable."""
  from etils import epath
  steps = mngr.all_steps()
  if not steps:
    return None
  path = epath.Path(mngr.directory) / str(max(steps)) / "state"
  try:
    saved = ocp.StandardCheckpointHandler().metadata(path).tree["state"]["params"]
  except _UNREADABLE:  # restore's own integrity checks will speak
    return None
  return jax.tree.map(lambda m: tuple(m.shape), saved)
