"""Sweeps beyond one machine: a SLURM job-array script, one grid point per array index.

Each task execs the point's `./launch.sh train` into the point's own workdir, so a requeued
or preempted task resumes it (a finished one exits at once); `sweep --report DIR` then
collects the points from the shared filesystem. Other schedulers take --print_commands.
"""

import os
import shlex

from cnnlab import rundir
from cnnlab.repo import LAUNCH


def command(args):
  """A point's shell command: `/abs/launch.sh train ARGS` (runs from any directory)."""
  return shlex.join([LAUNCH, "train", *args])


def script(commands, workdir):
  """The job-array script: task k runs commands[k]."""
  sweep_dir = rundir.SweepDir(os.path.abspath(workdir))
  name = os.path.basename(os.path.abspath(workdir)) or "sweep"
  lines = [
      "#!/bin/bash",
      f"#SBATCH --job-name={shlex.quote('cnnlab-' + name)}",
      f"#SBATCH --array=0-{len(commands) - 1}",
      "#SBATCH --requeue",
      "#SBATCH --signal=B:TERM@120",
      f"#SBATCH --output={shlex.quote(sweep_dir.path(sweep_dir.SLURM_LOG))}",
      "#SBATCH --open-mode=append",
      "# One grid point per array task, each a resumable `train` in its own workdir: a",
      "# requeued or preempted task resumes its point, a finished point exits at once.",
      "# SIGTERM (preemption, or 120 s before the time limit) saves a checkpoint first.",
      "# Add resources on the command line: sbatch --time=2:00:00 --gres=gpu:1 THIS_FILE",
      f"# When all are done: {shlex.join([LAUNCH, 'sweep', f'--report={sweep_dir.dir}'])}",
      "set -euo pipefail",
      'case "${SLURM_ARRAY_TASK_ID:?submit with sbatch, or set SLURM_ARRAY_TASK_ID}" in']
  lines += [f"  {i}) exec {cmd} ;;" for i, cmd in enumerate(commands)]
  lines += [f'  *) echo "cnnlab: error: no grid point $SLURM_ARRAY_TASK_ID (0-{len(commands) - 1})"'
            " >&2; exit 2 ;;", "esac"]
  return "\n".join(lines) + "\n"


def write_script(commands, workdir):
  """WORKDIR/sweep.slurm, executable; returns its path."""
  path = rundir.SweepDir(workdir).path(rundir.SweepDir.SLURM)
  with open(path, "w") as f:
    f.write(script(commands, workdir))
  os.chmod(path, 0o755)
  return path
