"""Checkpoints of a run's workdir: Orbax for the arrays, plus what Orbax does not do.

Orbax writes atomically (a step directory only gets its final name when complete) but never
checks content, has no lock, and can rotate away the newest step when asked to keep the best
(../shared/LESSONS.md). So each step also stores a JSON record with a SHA-256 digest of the
arrays; a restore that does not match (or holds NaN) falls back to the previous good step.

Layout of a workdir:
  config.json           the run's config (written once; a resume must match it)
  checkpoints/<step>/   Orbax steps: "state" (arrays) and "meta" (JSON: history, digest)
  checkpoints-unusable/ steps that failed their checks, moved aside on resume (kept for a person)
  metrics.jsonl         one line per finished epoch (deterministic numbers only)
  results.json          written once at the end; its presence means "finished"
"""

import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import sys
import weakref

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import serialization

from cnnlab.errors import UserError

CHECKPOINTS = "checkpoints"
UNUSABLE = "checkpoints-unusable"  # corrupt steps are moved here, never deleted
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_pending = weakref.WeakKeyDictionary()  # manager -> step of its save still in flight


def is_disk_full(err):
  """True for "no space left" / "quota exceeded", as OSError or as text (TensorStore)."""
  if isinstance(err, OSError) and err.errno in _DISK_FULL:
    return True
  text = str(err)
  return "No space left on device" in text or "Disk quota exceeded" in text


def _quiet_disk_full(record):
  """Drop Orbax's background tracebacks for a full disk: save()/wait() report it in one line."""
  return not (record.exc_info and is_disk_full(record.exc_info[1]))


logging.getLogger("absl").addFilter(_quiet_disk_full)


def _quiet_orphaned_reads(record):
  """Drop asyncio's "Task exception was never retrieved" for the reads a failed restore leaves
  behind (Orbax starts one per array); the restore's own error is reported in one line."""
  return not str(record.msg).startswith("Task exception was never retrieved")


logging.getLogger("asyncio").addFilter(_quiet_orphaned_reads)


def _quiet_closed_loop():
  """After a failed restore, TensorStore completes orphaned reads into Orbax's closed event
  loop, and each prints a traceback ("Event loop is closed"); the one-line warning suffices.
  Installed at import: those callbacks can fire before the failed restore returns."""
  previous = sys.unraisablehook
  if getattr(previous, "cnnlab", False):
    return

  def hook(unraisable):
    err = unraisable.exc_value
    if not (isinstance(err, RuntimeError) and str(err) == "Event loop is closed"):
      previous(unraisable)

  hook.cnnlab = True
  sys.unraisablehook = hook


_quiet_closed_loop()


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
  mngr = ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, CHECKPOINTS)),
                               item_names=("state", "meta"), options=options)
  # Orbax removes old temporary directories on a background thread. Wait for it: a run that
  # exits right after (a bad --noresume, a resume of another model) raced the interpreter's
  # shutdown and logged a traceback ("cannot schedule new futures after shutdown"; a CI flake).
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


def save(mngr, step, tree, meta, val_loss=None):
  """Save host copies of `tree` (a pytree of arrays) and `meta` (JSON) as `step`.

  Non-finite trees are refused: rotation would otherwise push good steps out.
  """
  host = jax.device_get(serialization.to_state_dict(tree))
  if not all_finite(host):
    raise UserError(f"refusing to checkpoint non-finite weights at step {step}; the last good "
                    "checkpoint is kept. Lower the learning rate or set "
                    "--config.skip_nonfinite_updates=True")
  meta = dict(meta, step=int(step), digest=digest(host))
  metrics = None if val_loss is None else {"val_loss": float(val_loss)}
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


def restore_latest_good(mngr, target, log=print, set_aside=False):
  """Restore the newest step that passes its checks; None when there is none.

  A corrupt step is reported in one line and skipped (never deleted: a person may want it).
  With `set_aside` (a run about to train on), the skipped newer steps are moved to
  <workdir>/checkpoints-unusable/ once a good step is found, since Orbax never overwrites a
  step and would refuse to save that step number again. If no step is good, nothing moves:
  that is more likely a config mismatch than corruption.
  """
  bad = []
  for step in sorted(mngr.all_steps(), reverse=True):
    try:
      restored = restore(mngr, step, target)
    except Exception as err:  # Orbax raises many types for damaged files.
      log(f"cnnlab: warning: checkpoint step {step} in {mngr.directory} is unusable "
          f"({' '.join(str(err).split())[:160]}); trying the previous one")
      bad.append(step)
      continue
    if set_aside and bad:
      _set_aside(mngr, bad, log)
    return restored
  return None


def _set_aside(mngr, steps, log):
  root = os.path.dirname(os.path.abspath(str(mngr.directory)))
  for step in steps:
    dest = os.path.join(root, UNUSABLE, str(step))
    n = 1
    while os.path.exists(dest):
      dest, n = os.path.join(root, UNUSABLE, f"{step}.{n}"), n + 1
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    shutil.move(os.path.join(str(mngr.directory), str(step)), dest)
    log(f"cnnlab: warning: moved unusable checkpoint step {step} to {dest}")
  mngr.reload()


def read_json(path):
  """A JSON file's content; a damaged file is a UserError naming it, not a traceback."""
  with open(path) as f:
    text = f.read()
  try:
    return json.loads(text)
  except ValueError as err:
    raise UserError(f"{path} is damaged (not valid JSON: {err}); restore it from a backup or "
                    "use a new --workdir") from None


def read_jsonl(path):
  """The records of a JSON-lines file (metrics.jsonl, timings.jsonl); [] when it is absent."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def write_json(path, obj):
  """Write JSON atomically (temp file + rename), so a kill never leaves half a file."""
  tmp = f"{path}.tmp"
  try:
    with open(tmp, "w") as f:
      json.dump(obj, f, indent=2, sort_keys=True)
      f.write("\n")
    os.replace(tmp, path)
  except OSError as err:
    if not is_disk_full(err):
      raise
    if os.path.exists(tmp):
      os.remove(tmp)
    raise UserError(f"no space left on device while writing {path}; the previous version is "
                    "kept: free space and resume (run the same command again)") from None


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
