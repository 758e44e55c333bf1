"""A sweep from start to exit code: check the grid, record it, run (or hand out) the points,
tabulate them. What `./launch.sh sweep` does, callable in-process.

The workdir's record (rundir.SweepDir) keeps the grid and the fields not swept, so the same
command again skips finished points and resumes the others, and a different config is refused
rather than mixed in. Exit codes: 0 every point finished, 1 some did not, 128 + signal when
stopped (130 Ctrl-C, 143 SIGTERM).
"""

import dataclasses
import json
import os
import shlex
import sys

from cnnlab import files, rundir
from cnnlab.errors import UserError
from cnnlab.sweep import grid, report, runner, slurm


@dataclasses.dataclass(frozen=True)
class Request:
  """One `sweep` command: the base config, its file and overrides, the grid and where to run.

  overrides: {field: "--config.FIELD=value"} as given, applied to every point.
  where: "local" (train here, `parallel` at a time), "slurm" (write a job array) or "print"
  (print one `train` command per point).
  """
  config: object
  config_file: str
  overrides: dict
  sweeps: tuple
  workdir: str
  parallel: int = 1
  data_dir: str = None
  where: str = "local"


def run(request):
  """Check every point, record the grid, run the points not finished; the exit code."""
  axes = grid.parse_grid(list(request.sweeps), request.config)
  keys = [key for key, _ in axes]
  for key in keys:
    if key in request.overrides:
      raise UserError(f"config.{key} is both swept and set by {request.overrides[key]}; drop "
                      "one of them")
  points = grid.expand_grid(axes)
  names = grid.point_names(points)
  _check_points(request.config, points, names)
  sweep_dir = rundir.SweepDir(files.writable_dir(request.workdir))
  with rundir.locked(sweep_dir.dir):  # one sweep per workdir at a time
    check_record(sweep_dir, request.config, axes)
    index = sweep_dir.read_points()
    index.update(zip(names, points))
    sweep_dir.write_points(index)
    if request.where != "local":
      return _commands_to_run_elsewhere(request, sweep_dir, names, points)
    outcomes, signum = runner.run_points(_jobs(request, sweep_dir, names, points),
                                         request.parallel)
    rows = [report.point_row(name, point, sweep_dir.point(name).dir, outcomes.get(name))
            for name, point in zip(names, points)]
    return _tabulate(sweep_dir, keys, rows, signum, resume=_command(request))


def report_only(workdir):
  """`sweep --report DIR`: the table of a sweep's points as they are on disk; the exit code."""
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


def _check_points(config, points, names):
  """Run the config checks on every point now, not hours into the sweep."""
  from cnnlab import config as config_lib  # imports JAX: after the cheap checks
  for point, name in zip(points, names):
    try:
      config_lib.check(grid.apply_point(config, point))
    except UserError as err:
      raise UserError(f"point {name}: {err}") from None


def check_record(sweep_dir, config, axes):
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


def _jobs(request, sweep_dir, names, points):
  """(name, argv, workdir) of each point not finished yet: one `train` process each."""
  jobs = []
  for name, point in zip(names, points):
    point_run = sweep_dir.point(name)
    if point_run.finished:
      print(f"skip {name} (finished already)")
      continue
    args = grid.train_args(request.config_file, request.overrides.values(), point,
                           point_run.dir, request.data_dir)
    jobs.append((name, [sys.executable, "-m", "cnnlab.cli", "train", *args], point_run.dir))
  return jobs


def _command(request):
  """The `sweep` command line that resumes this sweep."""
  parts = ["./launch.sh", "sweep", f"--config={request.config_file}"]
  parts += [f"--sweep={s}" for s in request.sweeps] + list(request.overrides.values())
  parts += [f"--workdir={request.workdir}", f"--parallel={request.parallel}"]
  parts += [f"--data_dir={request.data_dir}"] if request.data_dir else []
  return shlex.join(parts)


def _commands_to_run_elsewhere(request, sweep_dir, names, points):
  """--print_commands / --launcher=slurm: the points' `train` commands, run elsewhere."""
  data_dir = request.data_dir and os.path.abspath(request.data_dir)
  config_file = os.path.abspath(request.config_file)
  commands = [slurm.command(grid.train_args(config_file, request.overrides.values(), p,
                                            os.path.abspath(sweep_dir.point(n).dir), data_dir))
              for n, p in zip(names, points)]
  collect = shlex.join([slurm.LAUNCH, "sweep", f"--report={os.path.abspath(sweep_dir.dir)}"])
  if request.where == "print":
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
