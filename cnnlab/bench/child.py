"""Benchmarks time fresh processes (start-up, imports, data and compilation all count)."""

import re
import subprocess
import sys

from cnnlab import repo
from cnnlab.errors import UserError


def run_python(args, env=None):
  """stdout of `python ARGS` in a fresh process, with the repository on PYTHONPATH.

  A failing child becomes one UserError line: the last line of its stderr, which for a
  UserError or other exception is its message (no traceback reaches the user).
  """
  env = repo.child_env(env)
  proc = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True)
  if proc.returncode:
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    last = lines[-1].strip() if lines else f"exit code {proc.returncode}"
    last = re.sub(r"^(cnnlab\.errors\.UserError: |cnnlab: error: )", "", last)
    raise UserError(f"a benchmark process failed: {last}")
  return proc.stdout
