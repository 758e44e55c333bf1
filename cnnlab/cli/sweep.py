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

from cnnlab import rundir
from cnnlab.cli.common import require
from cnnlab.sweep import grid, report, runner
from cnnlab.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(REPO, "experiments", "textbook.py"),
    "experiment config file; --config.FIELD=value overrides apply to every point",
    lock_config=True)
_SWEEP = flags.DEFINE_multi_string(
    "sweep", [], "config.KEY=V1,V2,...: values of one field (repeat the flag: the grid is the "
    "cartesian product)")
_WORKDIR = flags.DEFINE_string("workdir", None, "the sweep's directory (one subdirectory per "
                               "point, plus results.csv/.md/.png)")
_PARALLEL = flags.DEFINE_integer("parallel", 1, "points trained side by side")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "passed on to every point's `train`")


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


def _check_record(sweep_dir, config, keys):
  """Refuse to mix sweeps: fields not swept must match what the workdir's points ran with."""
  flat = json.loads(json.dumps({k: v for k, v in grid.flatten(config).items()
                                if k != "data_dir"}))  # as the saved record reads back
  old = sweep_dir.read_record()
  if old is not None:
    swept = set(keys) | set(old.get("keys", []))
    for key, value in old.get("base", {}).items():
      if key not in swept and key in flat and flat[key] != value:
        raise UserError(f"{sweep_dir.dir!r} holds a sweep run with config.{key}={value!r} (now "
                        f"{flat[key]!r}); pass the same config to resume it, or a new --workdir")
  sweep_dir.write_record({"keys": keys, "base": {k: v for k, v in flat.items()
                                                 if k not in keys}})


def _command(config_file, given):
  parts = ["./launch.sh", "sweep", f"--config={config_file}"]
  parts += [f"--sweep={s}" for s in _SWEEP.value] + list(given.values())
  parts += [f"--workdir={_WORKDIR.value}", f"--parallel={_PARALLEL.value}"]
  parts += [f"--data_dir={_DATA_DIR.value}"] if _DATA_DIR.value else []
  return shlex.join(parts)


def main(argv):
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

  workdir = rundir.writable_dir(_WORKDIR.value)
  sweep_dir = rundir.SweepDir(workdir)
  with rundir.locked(workdir):  # one sweep per workdir at a time
    _check_record(sweep_dir, config, keys)
    index = sweep_dir.read_points()
    index.update({name: point for name, point in zip(names, points)})
    sweep_dir.write_points(index)
    jobs = []
    for name, point in zip(names, points):
      point_run = sweep_dir.point(name)
      if point_run.finished:
        print(f"skip {name} (finished already)")
        continue
      argv = [sys.executable, "-m", "cnnlab.cli", "train", f"--config={config_file}",
              *given.values(), *grid.override_flags(point), f"--workdir={point_run.dir}"]
      argv += [f"--data_dir={_DATA_DIR.value}"] if _DATA_DIR.value else []
      jobs.append((name, argv, point_run.dir))
    outcomes, signum = runner.run_points(jobs, _PARALLEL.value)
    rows = [report.point_row(name, point, sweep_dir.point(name).dir, outcomes.get(name))
            for name, point in zip(names, points)]
    table = report.write_reports(workdir, keys, rows)
  print()
  print(table, end="")
  print(f"\nresults: {'  '.join(sweep_dir.report(ext) for ext in ('csv', 'md', 'png'))}")
  done = sum(r["status"] == "ok" for r in rows)
  if signum is not None:
    print(f"cnnlab: sweep stopped ({done} of {len(rows)} points finished); resume with:\n  "
          f"{_command(config_file, given)}", file=sys.stderr)
    return 128 + signum
  if done < len(rows):
    print(f"cnnlab: {len(rows) - done} of {len(rows)} points failed; their logs are "
          f"{workdir}/<point>/{rundir.STDERR}. Re-running the command retries them.", file=sys.stderr)
    return 1
  return 0
