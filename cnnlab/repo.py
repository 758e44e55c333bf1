"""Where this checkout lives: its root, and what a child Python process needs to import it.

The one home of both: commands find their default configs here, benchmarks and sweeps start
children that must import this cnnlab (not another one installed elsewhere).
"""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(ROOT, "launch.sh")


def child_env(env=None):
  """A copy of `env` (default os.environ) with this checkout first on PYTHONPATH."""
  env = dict(os.environ if env is None else env)
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
  return env
