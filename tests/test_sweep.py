"""The sweep command: grid parsing (pure), the subprocess runner (fake children), and one real
2x2 sweep that is then damaged and re-run, to show finished points are never retrained.

The real sweep varies data-only fields (seed, validation_fraction), so every point compiles
the same programs and a shared JAX cache keeps the four trainings short on a 2-core CPU.
"""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from cnnlab.sweep import grid, runner, slurm
from cnnlab.sweep import report
from cnnlab.errors import UserError
from conftest import DATA_DIR, REPO, has_data, smoke_config

TINY = ["--config=experiments/smoke.py", "--config.train_size=256",
        "--config.validation_size=256", "--config.test_size=256", "--config.num_epochs=1",
        f"--data_dir={DATA_DIR}"]


@pytest.fixture(scope="module")
def jax_cache(tmp_path_factory):
  return str(tmp_path_factory.mktemp("jax_cache"))


def run_sweep(*args, cache=""):
  env = dict(os.environ, PYTHONPATH=REPO, CNNLAB_JAX_CACHE=cache)
  return subprocess.run([sys.executable, "-m", "cnnlab.cli", "sweep", *args], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=300)


# ------------------------------------------------------------------------- parsing (pure)
def test_parse_grid_types_and_product():
  axes = grid.parse_grid(["config.optimizer.learning_rate=1e-3, 3e-4,1e-4",
                           "config.model.dropout=0.3,0.4", "config.batch_size=16,32",
                           "config.skip_nonfinite_updates=true,False",
                           "config.optimizer.schedule=constant,cosine"], smoke_config())
  assert axes[0] == ("optimizer.learning_rate", [1e-3, 3e-4, 1e-4])
  assert axes[2] == ("batch_size", [16, 32]) and type(axes[2][1][0]) is int
  assert axes[3] == ("skip_nonfinite_updates", [True, False])
  assert axes[4] == ("optimizer.schedule", ["constant", "cosine"])
  points = grid.expand_grid(axes[:2])
  assert len(points) == 6
  assert points[0] == {"optimizer.learning_rate": 1e-3, "model.dropout": 0.3}
  assert points[1] == {"optimizer.learning_rate": 1e-3, "model.dropout": 0.4}
  assert grid.point_names(points)[0] == "optimizer.learning_rate=0.001,model.dropout=0.3"
  assert grid.override_flags(points[2]) == ["--config.optimizer.learning_rate=0.0003",
                                             "--config.model.dropout=0.3"]
  config = grid.apply_point(smoke_config(), points[5])
  assert config.optimizer.learning_rate == 1e-4 and config.model.dropout == 0.4
  assert smoke_config().optimizer.learning_rate == 1e-3  # a copy


def test_point_names_fall_back_to_numbers():
  assert grid.point_names([{"data_dir": "a/b"}, {"data_dir": "a_b"}]) == ["point000",
                                                                           "point001"]
  assert grid.point_names([{"data_dir": "/x y"}]) == ["data_dir=_x_y"]


@pytest.mark.parametrize("expr, words", [
    ("config.optimizer.learning_rate", "no '='"),
    ("optimizer.learning_rate=1e-3", "must start with 'config.'"),
    ("config.optimizer.learning_rate=", "empty value"),
    ("config.optimizer.learning_rate=1e-3,,1e-4", "empty value"),
    ("config.optimizer.learnig_rate=1e-3", "did you mean 'config.optimizer.learning_rate'"),
    ("config.optimizer.learning_rate=abc", "'abc' for config.optimizer.learning_rate is not a number"),
    ("config.batch_size=3.5", "not an integer"),
    ("config.skip_nonfinite_updates=maybe", "not true or false"),
    ("config.model=1", "group of fields"),
    ("config.seed=1,1", "lists a value twice"),
])
def test_bad_sweep_expressions(expr, words):
  with pytest.raises(UserError, match=words.replace("(", r"\(").replace(".", r"\.")):
    grid.parse_grid([expr], smoke_config())


def test_empty_grid_and_repeated_key():
  with pytest.raises(UserError, match="no --sweep"):
    grid.parse_grid([], smoke_config())
  with pytest.raises(UserError, match="swept by two"):
    grid.parse_grid(["config.seed=1", "config.seed=2"], smoke_config())


# ------------------------------------------------------------------------- tables (pure)
def test_tables_rank_by_val_accuracy(tmp_path):
  keys = ["model.dropout"]
  rows = [{"run": f"model.dropout={d}", "status": "finished", "model": "textbook_cnn",
           "config": {"model.dropout": d}, "val_accuracy": v, "test_accuracy": v - 0.01,
           "test_accuracy_std": None, "num_seeds": 1, "best_epoch": 2, "epochs": 3,
           "wall_time_s": 75.0, "images_per_s": 1234.5, "exit_code": None, "error": ""}
          for d, v in ((0.2, 0.85), (0.3, 0.9))]
  rows.append(report.point_row("model.dropout=0.4", {"model.dropout": 0.4}, str(tmp_path),
                              (1, "ValueError: boom | bang", 3.0)))
  table = report.write_reports(str(tmp_path), keys, rows)
  lines = table.splitlines()
  assert lines[0] == ("| # | run | model | model.dropout | epochs | val acc | test acc | "
                      "wall time | images/s | status |")
  assert lines[2] == ("| 1 | model.dropout=0.3 | textbook_cnn | 0.3 | 3 | 0.9000 | 0.8900 | "
                      "1m 15s | 1,234 | finished |")
  assert lines[3].startswith("| 2 | model.dropout=0.2 | textbook_cnn | 0.2 | 3 | 0.8500 |")
  assert lines[4] == ("| - | model.dropout=0.4 | - | 0.4 | - | - | - | - | - | failed (exit 1): "
                      "ValueError: boom \\| bang |")
  with open(tmp_path / "results.csv") as f:
    table_rows = list(csv.DictReader(f))
  assert [(r["run"], r["status"], r["model.dropout"]) for r in table_rows] == [
      ("model.dropout=0.2", "finished", "0.2"), ("model.dropout=0.3", "finished", "0.3"),
      ("model.dropout=0.4", "failed", "0.4")]  # grid order
  assert table_rows[2]["exit_code"] == "1" and table_rows[1]["val_accuracy"] == "0.9"
  assert (tmp_path / "results.png").stat().st_size > 1000
  assert (tmp_path / "results.md").read_text() == table


# --------------------------------------------------------------- runner (fake children)
def _job(tmp_path, name, code):
  return (name, [sys.executable, "-c", code], str(tmp_path / name))


def test_a_crash_fails_only_its_point(tmp_path):
  jobs = [_job(tmp_path, "good", "print('fine')"),
          _job(tmp_path, "bad", "import sys; print('warming up', file=sys.stderr); "
                                "raise ValueError('boom')")]
  outcomes, signum = runner.run_points(jobs, parallel=2, log=lambda *a: None)
  assert signum is None
  assert outcomes["good"][0] == 0
  assert outcomes["bad"][:2] == (1, "ValueError: boom")
  row = report.point_row("bad", {}, str(tmp_path / "bad"), outcomes["bad"])
  assert (row["status"], row["exit_code"]) == ("failed", 1)


def test_ctrl_c_stops_children_and_starts_no_more(tmp_path):
  child = ("import signal, sys, time\n"
           "signal.signal(signal.SIGINT, lambda *a: sys.exit(130))\n"
           "open({!r}, 'w').close()\ntime.sleep(60)\n")
  jobs = [_job(tmp_path, f"p{i}", child.format(str(tmp_path / f"ready{i}"))) for i in range(3)]

  def interrupt():  # once both running children can take it, as a terminal's Ctrl-C
    while not all(os.path.exists(tmp_path / f"ready{i}") for i in range(2)):
      time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGINT)

  threading.Thread(target=interrupt, daemon=True).start()
  t0 = time.time()
  outcomes, signum = runner.run_points(jobs, parallel=2, log=lambda *a: None)
  assert signum == signal.SIGINT and time.time() - t0 < 30
  assert sorted(outcomes) == ["p0", "p1"]  # p2 never started
  assert all(code == 130 for code, _, _ in outcomes.values())
  assert report.point_row("p0", {}, jobs[0][2], outcomes["p0"])["status"] == "interrupted"
  (tmp_path / "p2").mkdir()  # never started: a directory without a log (or nothing at all)
  assert report.point_row("p2", {}, jobs[2][2])["status"] == "pending"


# --------------------------------------------------------------------------- the command
@pytest.mark.parametrize("args, words", [
    (["--sweep=config.seed=1,2"], "--workdir is missing"),
    (["--sweep=config.seed=1", "--workdir=W", "--parallel=0"], "--parallel must be >= 1"),
    (["--workdir=W"], "no --sweep given"),
    (["--sweep=config.optimizer.lr=1e-3", "--workdir=W"],
     "did you mean 'config.optimizer.learning_rate'"),
    (["--sweep=config.optimizer.learning_rate=abc", "--workdir=W"], "is not a number"),
    (["--report=W"], "holds no sweep"),
])
def test_bad_input_is_one_line_and_exit_2(args, words, tmp_path):
  args = [a.replace("=W", f"={tmp_path}/w") for a in args]
  result = run_sweep(*args)
  assert result.returncode == 2, result.stderr
  assert result.stderr.startswith("cnnlab: error: ") and result.stderr.count("\n") == 1
  assert words in result.stderr
  assert not os.path.exists(tmp_path / "w")


NAMES = ["seed=0,validation_fraction=0.2", "seed=0,validation_fraction=0.25",
         "seed=1,validation_fraction=0.2", "seed=1,validation_fraction=0.25"]
GRID = ["--sweep=config.seed=0,1", "--sweep=config.validation_fraction=0.2,0.25"]


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory, jax_cache):
  """One real 2x2 sweep of the tiny config: (workdir, its args, the result, results.csv)."""
  if not has_data():
    pytest.skip(f"Fashion-MNIST IDX files not in {DATA_DIR}")
  workdir = tmp_path_factory.mktemp("local_sweep") / "sweep"
  args = [*TINY, *GRID, f"--workdir={workdir}", "--parallel=2"]
  result = run_sweep(*args, cache=jax_cache)
  return workdir, args, result, (workdir / "results.csv").read_text()


@pytest.mark.slow
def test_sweep_2x2_then_resume(local_sweep, jax_cache):
  workdir, args, result, _ = local_sweep
  names = NAMES
  assert result.returncode == 0, result.stderr
  assert all((workdir / n / "results.json").exists() for n in names)
  with open(workdir / "results.csv") as f:
    rows = list(csv.DictReader(f))
  assert [r["run"] for r in rows] == names and {r["status"] for r in rows} == {"finished"}
  for row in rows:  # the table holds each point's own results, not approximations
    results = json.loads((workdir / row["run"] / "results.json").read_text())
    timings = [json.loads(l) for l in open(workdir / row["run"] / "timings.jsonl")]
    assert float(row["val_accuracy"]) == results["val_accuracy"]
    assert float(row["test_accuracy"]) == results["test_accuracy"]
    assert int(row["epochs"]) == results["epochs"] and int(row["best_epoch"]) == results["best_epoch"]
    assert float(row["images_per_s"]) == pytest.approx(
        sum(t["images_per_s"] for t in timings) / len(timings))
  table = (workdir / "results.md").read_text()
  assert table in result.stdout and len(table.splitlines()) == 6
  assert "| # | run | model | seed | validation_fraction | epochs | val acc |" in table
  assert (workdir / "results.png").exists()

  # Two points lose their results.json (unfinished runs); one of them is locked by another
  # process, so its `train` fails: the sweep goes on and reports it.
  import fcntl
  for name in names[:2]:
    (workdir / name / "results.json").unlink()
  lock = open(workdir / names[1] / ".lock", "w")
  fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
  kept = {n: (workdir / n / "results.json").stat().st_mtime_ns for n in names[2:]}
  logs = {n: (workdir / n / "stdout.log").read_text() for n in names[2:]}
  result = run_sweep(*args, cache=jax_cache)
  lock.close()
  assert result.returncode == 1, result.stderr
  assert "1 of 4 points did not finish" in result.stderr
  assert (workdir / names[0] / "results.json").exists()
  assert "resuming" in (workdir / names[0] / "stdout.log").read_text()
  assert {n: (workdir / n / "results.json").stat().st_mtime_ns for n in names[2:]} == kept
  assert {n: (workdir / n / "stdout.log").read_text() for n in names[2:]} == logs
  assert result.stdout.count("finished already") == 2
  assert f"failed (exit 2): cnnlab: error: workdir '{workdir / names[1]}' is in use" \
      in result.stdout
  with open(workdir / "results.csv") as f:
    assert [r["status"] for r in csv.DictReader(f)] == ["finished", "failed", "finished",
                                                        "finished"]


def test_sweep_slurm_script_maps_task_ids_to_commands(tmp_path):
  commands = [slurm.command(grid.train_args("/c.py", ["--config.num_epochs=1"], {"seed": s},
                                            f"{tmp_path}/seed={s}")) for s in (0, 1)]
  assert commands[1] == (f"{REPO}/launch.sh train --config=/c.py --config.num_epochs=1 "
                         f"--config.seed=1 --workdir={tmp_path}/seed=1")
  path = slurm.write_script(commands, str(tmp_path))
  assert path == f"{tmp_path}/sweep.slurm" and os.access(path, os.X_OK)
  assert subprocess.run(["bash", "-n", path]).returncode == 0
  text = open(path).read()
  assert "\n#SBATCH --array=0-1\n#SBATCH --requeue\n" in text
  assert f"\n#SBATCH --output={tmp_path}/slurm-%A_%a.out\n" in text
  assert [line for line in text.splitlines() if line.startswith(("  0)", "  1)"))] == [
      f"  0) exec {commands[0]} ;;", f"  1) exec {commands[1]} ;;"]
  for env, message in (({"SLURM_ARRAY_TASK_ID": "2"}, "cnnlab: error: no grid point 2 (0-1)"),
                       ({}, "SLURM_ARRAY_TASK_ID: submit with sbatch")):
    task = subprocess.run(["bash", path], env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, text=True)
    assert task.returncode != 0 and message in task.stderr
  assert os.listdir(tmp_path) == ["sweep.slurm"]  # nothing ran


@pytest.mark.slow
def test_sweep_slurm_array_gives_the_local_results(local_sweep, tmp_path, jax_cache):
  """Each array task run here with bash, then `--report`: the local sweep's numbers."""
  _, _, local, local_csv = local_sweep
  assert local.returncode == 0, local.stderr
  workdir = tmp_path / "slurm"
  made = run_sweep(*TINY, "--sweep=config.seed=0,1", "--sweep=config.validation_fraction=0.2",
                   f"--workdir={workdir}", "--launcher=slurm", cache=jax_cache)
  assert made.returncode == 0, made.stderr
  script = workdir / "sweep.slurm"
  assert made.stdout.splitlines() == [
      f"wrote {script}: a job array of 2 points (one resumable `train` each)",
      f"submit:  sbatch {script}   (add --time, --gres, --partition as needed)",
      f"collect: {REPO}/launch.sh sweep --report={workdir}"]
  pending = run_sweep(f"--report={workdir}")  # nothing ran yet
  assert pending.returncode == 1 and "2 of 2 points did not finish" in pending.stderr
  assert ("| - | seed=1,validation_fraction=0.2 | - | 1 | 0.2 | - | - | - | - | - | pending |"
          in pending.stdout)
  printed = run_sweep(*TINY, "--sweep=config.seed=0,1", "--sweep=config.validation_fraction=0.2",
                      f"--workdir={workdir}", "--print_commands", cache=jax_cache)
  assert printed.returncode == 0, printed.stderr
  lines = script.read_text().splitlines()  # task k runs the k-th printed command
  assert [f"  {k}) exec {c} ;;" for k, c in enumerate(printed.stdout.splitlines())] == \
      [line for line in lines if line.startswith(("  0)", "  1)"))]
  env = dict(os.environ, CNNLAB_JAX_CACHE=jax_cache)
  for k in ("0", "1", "0"):  # task 0 requeued after it finished: nothing to do
    task = subprocess.run(["bash", str(workdir / "sweep.slurm")], capture_output=True,
                          text=True, env=dict(env, SLURM_ARRAY_TASK_ID=k), timeout=300)
    assert task.returncode == 0, task.stderr
  assert "holds a finished run" in task.stdout
  report = run_sweep(f"--report={workdir}")
  assert report.returncode == 0, report.stderr

  def numbers(text):  # every column but the wall-clock ones
    return [{k: v for k, v in row.items() if k not in ("wall_time_s", "images_per_s")}
            for row in csv.DictReader(io.StringIO(text))]

  expected = [r for r in numbers(local_csv) if r["validation_fraction"] == "0.2"]
  assert [r["run"] for r in expected] == ["seed=0,validation_fraction=0.2",
                                          "seed=1,validation_fraction=0.2"]
  assert numbers((workdir / "results.csv").read_text()) == expected


@pytest.mark.parametrize("key, meant", [("optimizer.lr", "optimizer.learning_rate"),
                                        ("learning_rate", "optimizer.learning_rate"),
                                        ("optimizer.learn", "optimizer.learning_rate"),
                                        ("model.dropuot", "model.dropout"),
                                        ("batchsize", "batch_size")])
def test_unknown_key_names_the_closest(key, meant):
  with pytest.raises(UserError, match=f"did you mean 'config.{meant}'"):
    grid.parse_grid([f"config.{key}=1"], smoke_config())
