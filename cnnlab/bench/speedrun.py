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


def config_for(target):
  """The speedrun config's repo-relative path for `target` (0.91 == 0.910), or None."""
  return CONFIGS.get(target)


def targets_text():
  """'0.91, 0.93 and 0.94': the targets that have a speedrun config, for messages."""
  names = [f"{t:g}" for t in sorted(CONFIGS)]
  return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]
