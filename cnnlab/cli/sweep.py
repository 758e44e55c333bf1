r"""`sweep`: train every point of a config grid, each in its own process, and tabulate them.

  ./launch.sh sweep --config=experiments/textbook.py --workdir=runs/sweep1 \
      --sweep=config.optimizer.learning_rate=1e-3,3e-4 --sweep=config.model.dropout=0.3,0.4

Points live in WORKDIR/<key=value,...>/ (listed in WORKDIR/points.json); the same command
again skips finished points and resumes the others. Exit 0 when every point finished, 1 when
some failed, 130/143 when stopped by Ctrl-C/SIGTERM.
"""

from absl import flags
from ml_collections import config_flags

from cnnlab.cli import common
from cnnlab.cli.common import require

_CONFIG = config_flags.DEFINE_config_file(
    "config", common.DEFAULT_CONFIG,
    "experiment config file; --config.FIELD=value overrides apply to every point",
    lock_config=True)
_SWEEP = flags.DEFINE_multi_string(
    "sweep", [], "config.KEY=V1,V2,...: values of one field (repeat the flag: the grid is the "
    "cartesian product)")
_WORKDIR = flags.DEFINE_string("workdir", None, "the sweep's directory (one subdirectory per "
                               "point, plus results.csv/.md/.png)")
_PARALLEL = flags.DEFINE_integer("parallel", 1, "points trained side by side")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "passed on to every point's `train`")
_LAUNCHER = flags.DEFINE_enum(
    "launcher", "local", ["local", "slurm"], "local: train the points here; slurm: write "
    "WORKDIR/sweep.slurm, a job array of one resumable `train` per point, for `sbatch`")
_PRINT = flags.DEFINE_bool("print_commands", False, "print one `train` command per point "
                           "(for GNU parallel, a batch queue...) instead of running them")
_REPORT = flags.DEFINE_string("report", None, "DIR: tabulate the points of the sweep in DIR as "
                              "they are on disk (after SLURM, --print_commands); train nothing")


def _overrides():
  """The --config.FIELD=value flags given, as `train` takes them: {field: flag}."""
  return {name[len("config."):]: flags.FLAGS[name].serialize() for name in flags.FLAGS
          if name.startswith("config.") and flags.FLAGS[name].present}


def main(argv):
  from cnnlab.sweep import run
  if _REPORT.value is not None:
    require(not _SWEEP.value, "--report tabulates a sweep that ran; drop --sweep (or --report)")
    return run.report_only(_REPORT.value)
  require(_WORKDIR.value, "--workdir is missing: name the sweep's directory, e.g. "
          "--workdir=runs/sweep1")
  require(_PARALLEL.value >= 1, f"--parallel must be >= 1, got {_PARALLEL.value}")
  return run.run(run.Request(
      config=_CONFIG.value, config_file=flags.FLAGS["config"].serialize().split("=", 1)[1],
      overrides=_overrides(), sweeps=tuple(_SWEEP.value), workdir=_WORKDIR.value,
      parallel=_PARALLEL.value, data_dir=_DATA_DIR.value,
      where="print" if _PRINT.value else _LAUNCHER.value))
