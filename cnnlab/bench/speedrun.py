"""The speedrun configs of issue #19: which experiments/ file `bench --time-to-accuracy=T` times.

The one table of target -> config. Kept free of JAX imports: cli/bench.py reads it before absl
parses the command line, to pick the default --config.
"""

import os

# Paths relative to the repository root.
CONFIGS = {
    0.91: os.path.join("experiments", "speedrun_91.py"),
    0.93: os.path.join("experiments", "speedrun_93.py"),
    0.94: os.path.join("experiments", "speedrun_94.py"),
}

# Issue #19's time limits: a seed reaches a target only if it does so within its limit, and a
# run stops at the first epoch that ends past it (the clock ran out).
LIMITS_S = {0.91: 20.0, 0.93: 180.0, 0.94: 900.0}


def config_for(target):
  """The speedrun config's repo-relative path for `target` (0.91 == 0.910), or None."""
  return CONFIGS.get(target)


def limit_for(target):
  """The target's time limit in seconds (issue #19), or None for a target without one."""
  return LIMITS_S.get(target)


def targets_text():
  """'0.91, 0.93 and 0.94': the targets that have a speedrun config, for messages."""
  names = [f"{t:g}" for t in sorted(CONFIGS)]
  return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]


def limits_text():
  """'0.91: 20 s, 0.93: 180 s, 0.94: 900 s', for help texts."""
  return ", ".join(f"{t:g}: {s:g} s" for t, s in sorted(LIMITS_S.items()))
