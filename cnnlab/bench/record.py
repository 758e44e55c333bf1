"""What every bench record holds besides its numbers: where it ran, on what code, with what config.

Records are committed (bench/results/) and compared across machines and months, so they carry
the machine, the library versions and the git commit, and name the config by its path inside
the repository: an absolute path only says where one checkout happened to live.
"""

import datetime
import json
import os
import platform
import subprocess

from cnnlab import files
from cnnlab.repo import ROOT


def machine_info():
  """CPU model, cores, Python/JAX/jaxlib/Flax/torch versions, backend and devices."""
  import flax
  import jax
  import jaxlib
  cpu = platform.processor()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
  except (OSError, StopIteration):
    pass
  info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
          "jax": jax.__version__, "jaxlib": jaxlib.__version__, "flax": flax.__version__,
          "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()]}
  try:
    import torch
    info["torch"] = torch.__version__
  except ImportError:
    info["torch"] = None
  return info


def git_state():
  """{"commit": HEAD, "dirty": tracked files changed} of the repository, or None outside git.

  "dirty" matters: a bench is often run on uncommitted work, and then the commit alone does
  not say what was measured.
  """
  def git(*args):
    return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True,
                          check=True, timeout=30).stdout.strip()
  try:
    return {"commit": git("rev-parse", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
  except (OSError, subprocess.SubprocessError):
    return None


def repo_relative(path):
  """`path` relative to the repository root when it lies inside it, else absolute."""
  path = os.path.abspath(path)
  rel = os.path.relpath(path, ROOT)
  return path if rel == os.pardir or rel.startswith(os.pardir + os.sep) else rel


def config_overrides(argv):
  """The --config.FIELD=value arguments of a command line (also `--config.FIELD value`), so a
  record made with overrides says so: the config path alone would name another experiment."""
  out = []
  for i, arg in enumerate(argv):
    if arg.startswith("--config."):
      out.append(arg if "=" in arg or i + 1 == len(argv) or argv[i + 1].startswith("--")
                 else f"{arg}={argv[i + 1]}")
  return out


def out_path(out, ext=".json"):
  """`out`, else bench/results/<UTC timestamp><ext>; its directory created and writable."""
  stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
  out = out or os.path.join("bench", "results", stamp + ext)
  files.writable_dir(os.path.dirname(out) or ".", "out")
  return out


def write(out, result, config_path, table, overrides=()):
  """Complete `result` (config path and overrides, machine, git) and write it to `out`; print
  the table."""
  result["config"] = repo_relative(config_path)
  result["config_overrides"] = list(overrides)
  result.setdefault("machine", machine_info())
  result["git"] = git_state()
  with open(out, "w") as f:
    json.dump(result, f, indent=1)
  print(table)
  print(f"wrote {out}")
