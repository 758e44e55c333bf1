r"""`sweep`: train every point of a config grid, each in its own process, and tabulate them.

  ./launch.sh sweep --config=experiments/textbook.py --workdir=runs/sweep1 \
      --sweep=config.optimizer.learning_rate=1e-3,3e-4 --sweep=config.model.dropout=0.3,0.4

Points live in WORKDIR/<key=value,...>/ (listed in WORKDIR/points.json); the same command
again skips finished points and resumes the others. Exit 0 when every point finished, 1 when
some failed, 130/143 when stopped by Ctrl-C/SIGTERM.
"""

import json
import os
import shlex
import sys

from absl import flags
from ml_collections import config_flags

from cnnlab import files, rundir
from cnnlab.cli import common
from cnnlab.cli.common import require
from cnnlab.sweep import grid, report, runner, slurm
from cnnlab.errors import UserError

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


def _config_flags():
  """The --config.FIELD=value flags given, as `train` takes them: {key: flag}."""
  given = {}
  for name in flags.FLAGS:
    if name.startswith("config.") and flags.FLAGS[name].present:
      given[name[len("config."):]] = flags.FLAGS[name].serialize()
  return given


def _check_points(config, points, names):
  """Run the config checks on every point now, not hours into the sweep."""
  from cnnlab import config as config_lib  # imports JAX: after the cheap checks
  for point, name in zip(points, names):
    try:
      config_lib.check(grid.apply_point(config, point))
    except UserError as err:
      raise UserError(f"point {name}: {err}") from None


def _check_record(sweep_dir, config, axes):
  """Refuse to mix sweeps: fields not swept must match what the workdir's points ran with.
  The record keeps the grid, for `--report`."""
  keys = [key for key, _ in axes]
  flat = json.loads(json.dumps({k: v for k, v in rundir.flatten(config).items()
                                if k != "data_dir"}))  # as the saved record reads back
  old = sweep_dir.read_record()
  if old is not None:
    swept = set(keys) | set(old.get("keys", []))
    for key, value in old.get("base", {}).items():
      if key not in swept and key in flat and flat[key] != value:
        raise UserError(f"{sweep_dir.dir!r} holds a sweep run with config.{key}={value!r} (now "
                        f"{flat[key]!r}); pass the same config to resume it, or a new --workdir")
  sweep_dir.write_record({"keys": keys, "grid": [[k, v] for k, v in axes],
                          "base": {k: v for k, v in flat.items() if k not in keys}})


def _command(config_file, given):
  parts = ["./launch.sh", "sweep", f"--config={config_file}"]
  parts += [f"--sweep={s}" for s in _SWEEP.value] + list(given.values())
  parts += [f"--workdir={_WORKDIR.value}", f"--parallel={_PARALLEL.value}"]
  parts += [f"--data_dir={_DATA_DIR.value}"] if _DATA_DIR.value else []
  return shlex.join(parts)


def _elsewhere(sweep_dir, names, points, config_file, given):
  """--print_commands / --launcher=slurm: the points' `train` commands, run elsewhere."""
  data_dir = _DATA_DIR.value and os.path.abspath(_DATA_DIR.value)
  commands = [slurm.command(grid.train_args(os.path.abspath(config_file), given.values(), p,
                                            os.path.abspath(sweep_dir.point(n).dir), data_dir))
              for n, p in zip(names, points)]
  collect = shlex.join([slurm.LAUNCH, "sweep", f"--report={os.path.abspath(sweep_dir.dir)}"])
  if _PRINT.value:
    print("\n".join(commands))
    print(f"# {len(commands)} points; when they are done: {collect}", file=sys.stderr)
    return 0
  path = slurm.write_script(commands, sweep_dir.dir)
  print(f"wrote {path}: a job array of {len(commands)} points (one resumable `train` each)\n"
        f"submit:  sbatch {shlex.quote(path)}   (add --time, --gres, --partition as needed)\n"
        f"collect: {collect}")
  return 0


def _tabulate(sweep_dir, keys, rows, signum=None, resume=None):
  """Write and print the reports; the exit code (0 all finished, 1 some not, 128+signal)."""
  table = report.write_reports(sweep_dir.dir, keys, rows)
  print()
  print(table, end="")
  print(f"\nresults: {'  '.join(sweep_dir.report(ext) for ext in ('csv', 'md', 'png'))}")
  done = sum(r["status"] == "finished" for r in rows)
  if signum is not None:
    print(f"cnnlab: sweep stopped ({done} of {len(rows)} points finished); resume with:\n  "
          f"{resume}", file=sys.stderr)
    return 128 + signum
  if done < len(rows):
    logs = f"{sweep_dir.dir}/<point>/{rundir.STDERR}"
    retry = "Re-running the command retries them."
    if not resume:  # --report: the points ran elsewhere
      logs += f" or, under SLURM, {sweep_dir.path(sweep_dir.SLURM_LOG)}"
      retry = (f"Submitting them again (sbatch {sweep_dir.path(sweep_dir.SLURM)}, or the "
               "commands) resumes them.")
    print(f"cnnlab: {len(rows) - done} of {len(rows)} points did not finish; their logs are "
          f"{logs}. {retry}", file=sys.stderr)
    return 1
  return 0


def _report_only(workdir):
  """--report DIR: the table of a sweep's points as they are on disk."""
  sweep_dir = rundir.SweepDir(workdir)
  record = sweep_dir.read_record() if os.path.isdir(workdir) else None
  if not record or "grid" not in record:
    raise UserError(f"{workdir!r} holds no sweep (no sweep record); pass the --workdir given "
                    "to `sweep`, or run that sweep command again to record its grid")
  points = grid.expand_grid(record["grid"])
  names = grid.point_names(points)
  with rundir.locked(workdir):
    rows = [report.point_row(n, p, sweep_dir.point(n).dir) for n, p in zip(names, points)]
    return _tabulate(sweep_dir, record["keys"], rows)


def main(argv):
  if _REPORT.value is not None:
    require(not _SWEEP.value, "--report tabulates a sweep that ran; drop --sweep (or --report)")
    return _report_only(_REPORT.value)
  require(_WORKDIR.value, "--workdir is missing: name the sweep's directory, e.g. "
              "--workdir=runs/sweep1")
  require(_PARALLEL.value >= 1, f"--parallel must be >= 1, got {_PARALLEL.value}")
  config = _CONFIG.value
  axes = grid.parse_grid(_SWEEP.value, config)
  keys = [key for key, _ in axes]
  given = _config_flags()
  for key in keys:
    if key in given:
      raise UserError(f"config.{key} is both swept and set by {given[key]}; drop one of them")
  points = grid.expand_grid(axes)
  names = grid.point_names(points)
  config_file = flags.FLAGS["config"].serialize().split("=", 1)[1]
  _check_points(config, points, names)

  workdir = files.writable_dir(_WORKDIR.value)
  sweep_dir = rundir.SweepDir(workdir)
  with rundir.locked(workdir):  # one sweep per workdir at a time
    _check_record(sweep_dir, config, axes)
    index = sweep_dir.read_points()
    index.update({name: point for name, point in zip(names, points)})
    sweep_dir.write_points(index)
    if _PRINT.value or _LAUNCHER.value == "slurm":
      return _elsewhere(sweep_dir, names, points, config_file, given)
    jobs = []
    for name, point in zip(names, points):
      point_run = sweep_dir.point(name)
      if point_run.finished:
        print(f"skip {name} (finished already)")
        continue
      args = grid.train_args(config_file, given.values(), point, point_run.dir, _DATA_DIR.value)
      jobs.append((name, [sys.executable, "-m", "cnnlab.cli", "train", *args], point_run.dir))
    outcomes, signum = runner.run_points(jobs, _PARALLEL.value)
    rows = [report.point_row(name, point, sweep_dir.point(name).dir, outcomes.get(name))
            for name, point in zip(names, points)]
    return _tabulate(sweep_dir, keys, rows, signum, resume=_command(config_file, given))
