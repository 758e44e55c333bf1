"""Checkpoints of a run's workdir: Orbax for the arrays, plus what Orbax does not do.

Orbax writes atomically (a step directory only gets its final name when complete) but never
checks content, has no lock, and can rotate away the newest step when asked to keep the best
(../shared/LESSONS.md). So each step also stores a JSON record with a SHA-256 digest of the
arrays; a restore that does not match (or holds NaN) falls back to the previous good step.

Layout of a workdir:
  config.json           the run's config (written once; a resume must match it)
  checkpoints/<step>/   Orbax steps: "state" (arrays) and "meta" (JSON: history, digest)
  metrics.jsonl         one line per finished epoch (deterministic numbers only)
  results.json          written once at the end; its presence means "finished"
"""

import fcntl
import hashlib
import json
import os
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import serialization

from cnnlab.errors import UserError

CHECKPOINTS = "checkpoints"


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


def manager(workdir, read_only=False):
  """An Orbax manager keeping the 2 latest steps and the best epoch (lowest val_loss)."""
  policy = ocp.checkpoint_managers.AnyPreservationPolicy([
      ocp.checkpoint_managers.LatestN(2),
      ocp.checkpoint_managers.BestN(get_metric_fn=lambda m: -m["val_loss"], n=1,
                                    keep_checkpoints_without_metrics=False),
  ])
  options = ocp.CheckpointManagerOptions(preservation_policy=policy, create=not read_only,
                                         cleanup_tmp_directories=not read_only,
                                         read_only=read_only)
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, CHECKPOINTS)),
                               item_names=("state", "meta"), options=options)


def save(mngr, step, tree, meta, val_loss=None):
  """Save host copies of `tree` (a pytree of arrays) and `meta` (JSON) as `step`.

  Non-finite trees are refused: rotation would otherwise push good steps out.
  """
  host = jax.device_get(serialization.to_state_dict(tree))
  if not all_finite(host):
    raise FloatingPointError(f"refusing to checkpoint non-finite values at step {step}")
  meta = dict(meta, step=int(step), digest=digest(host))
  metrics = None if val_loss is None else {"val_loss": float(val_loss)}
  mngr.save(int(step), args=ocp.args.Composite(state=ocp.args.StandardSave(host),
                                               meta=ocp.args.JsonSave(meta)),
            metrics=metrics, force=True)


def restore(mngr, step, target):
  """(tree, meta) of `step`, checked against its digest; raises ValueError if it fails."""
  template = jax.device_get(serialization.to_state_dict(target))
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype),
                          template)
  out = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                   meta=ocp.args.JsonRestore()))
  host, meta = jax.device_get(out["state"]), out["meta"]
  if meta.get("digest") != digest(host):
    raise ValueError("its contents do not match the digest saved with it")
  if not all_finite(host):
    raise ValueError("it holds non-finite values")
  return serialization.from_state_dict(target, host), meta


def restore_latest_good(mngr, target, log=print):
  """Restore the newest step that passes its checks; None when there is none.

  A corrupt step is reported in one line and skipped (never deleted: a person may want it).
  """
  for step in sorted(mngr.all_steps(), reverse=True):
    try:
      return restore(mngr, step, target)
    except Exception as err:  # Orbax raises many types for damaged files.
      log(f"cnnlab: warning: checkpoint step {step} in {mngr.directory} is unusable "
          f"({' '.join(str(err).split())[:160]}); trying the previous one")
  return None


def read_json(path):
  with open(path) as f:
    return json.load(f)


def write_json(path, obj):
  """Write JSON atomically (temp file + rename), so a kill never leaves half a file."""
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True)
    f.write("\n")
  os.replace(tmp, path)


def lock_workdir(workdir):
  """Hold an exclusive lock on the workdir for this process's lifetime.

  flock is released by the kernel when the process dies, so a stale lock cannot exist;
  the file records the owner's pid for the error message.
  """
  path = os.path.join(workdir, ".lock")
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
    os.close(fd)
    raise UserError(f"workdir {workdir!r} is in use by pid {owner}; wait for that run to "
                    "finish or choose another --workdir") from None
  os.ftruncate(fd, 0)
  os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
  return fd


def warn(message):
  print(message, file=sys.stderr, flush=True)
