"""Files that survive kills and say what is wrong: atomic JSON, JSON lines, writable checks.

Generic helpers under cnnlab.rundir (which alone knows a run's file names).
"""

import json
import os

from cnnlab.errors import UserError, is_disk_full


def read_json(path):
  """A JSON file's content; a damaged file is a UserError naming it, not a traceback."""
  with open(path) as f:
    text = f.read()
  try:
    return json.loads(text)
  except ValueError as err:
    raise UserError(f"{path} is damaged (not valid JSON: {err}); restore it from a backup or "
                    "use a new --workdir") from None


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


def read_jsonl(path):
  """The complete records of a JSON-lines file; [] when absent (a kill's half line is skipped)."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.endswith("\n") and line.strip()]


def check_writable(path, what="workdir"):
  """UserError unless `path` is a writable directory or could be created as one (creates nothing)."""
  parent = path
  while not os.path.exists(parent):
    parent = os.path.dirname(os.path.abspath(parent))
  if not os.path.isdir(parent):
    raise UserError(f"cannot create {what} {path!r} ({parent!r} is a file); choose another "
                    f"with --{what}")
  if not os.access(parent, os.W_OK | os.X_OK):
    raise UserError(f"{what} {path!r} is not writable; choose another with --{what}")
  return path


def writable_dir(path, what="workdir"):
  """Create `path` if needed and check it can be written; UserError naming the fix if not."""
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as err:
    raise UserError(f"cannot create {what} {path!r} ({err.strerror}); choose another with "
                    f"--{what}") from None
  if not os.access(path, os.W_OK | os.X_OK):
    raise UserError(f"{what} {path!r} is not writable; choose another with --{what}")
  return path


def user_cache(env, name):
  """$env if set, else ~/.cache/cnnlab/<name>: where cnnlab keeps what it can fetch again."""
  return os.environ.get(env) or os.path.join(os.path.expanduser("~"), ".cache", "cnnlab", name)
