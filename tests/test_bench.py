"""`bench` and `speedrun`: the throughput record and the time-to-accuracy runs, end to end on
tiny configs.

These check what the JSON holds and that the runs are real (fresh processes, the test set
read, the same numbers each time); the speed itself is measured by `./launch.sh bench`/`speedrun`.
"""

import json
import os
import statistics
import subprocess
import sys

import pytest

from conftest import DATA_DIR, REPO, needs_data, one_line_error, run_cli

pytestmark = pytest.mark.slow  # the quick tier skips it; --all and CI run it


def _git_head():
  return subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True, text=True,
                        check=True).stdout.strip()


@needs_data
def test_time_to_accuracy_runs_every_seed_in_a_cold_process_and_says_each_reached(tmp_path):
  out = tmp_path / "tta.json"
  proc = run_cli("speedrun", "--target=0.5", "--config=experiments/smoke.py",
                 f"--config.data_dir={DATA_DIR}", "--repeats=2", f"--out={out}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads(out.read_text())
  assert (result["target"], result["seeds"], result["cache"]) == (0.5, [0, 1], "cold")
  assert result["limit_s"] is None  # smoke.py has no speedrun fields: no time limit
  assert "warm" not in result  # --cache=cold (the default) runs no warm-cache reruns
  # The config as a path inside the repository, and what the record was made with.
  assert result["config"] == "experiments/smoke.py"
  assert result["config_overrides"] == [f"--config.data_dir={DATA_DIR}"]
  import jax
  import jaxlib
  machine = result["machine"]
  assert (machine["jax"], machine["jaxlib"], machine["cores"]) == (
      jax.__version__, jaxlib.__version__, os.cpu_count())
  assert machine["cpu"] and result["git"]["commit"] == _git_head()
  cold = result["cold"]
  assert [r["seed"] for r in cold["runs"]] == [0, 1]
  for run in cold["runs"]:
    assert run["reached_s"] > 0 and run["epoch"] == len(run["history"]) in (1, 2)
    assert run["history"][-1]["test_accuracy"] >= 0.5  # smoke: ~0.7 on 1,000 test images
    assert all(h["test_accuracy"] < 0.5 for h in run["history"][:-1])  # the first to reach
    assert run["history"][-1]["s"] == run["reached_s"]
  times = [r["reached_s"] for r in cold["runs"]]
  assert (cold["reached"], cold["every_seed_reached"], cold["not_reached_seeds"]) == (2, True, [])
  assert cold["reached_within_limit"] == 2
  assert (cold["mean_s"], cold["std_s"], cold["max_s"]) == (
      statistics.mean(times), statistics.stdev(times), max(times))
  assert "time to test accuracy 0.5 (one fresh process per seed, compile included; seeds 0, 1)" \
      in proc.stdout
  assert "  cold compilation cache: every seed reached: mean " in proc.stdout
  assert "    seed 0: 0.5 reached after epoch " in proc.stdout
  assert "    seed 1: 0.5 reached after epoch " in proc.stdout


@needs_data
def test_speedrun_without_config_trains_speedrun_91_to_its_target_and_limit(tmp_path):
  """`speedrun` alone trains experiments/speedrun_91.py to 0.91 within its 20 s limit (here
  cut to one step, so it cannot reach 0.91: the record and table say which seed did not), with
  warm reruns."""
  out = tmp_path / "tta.json"
  proc = run_cli("speedrun", f"--config.data_dir={DATA_DIR}",
                 "--config.train_size=64", "--config.batch_size=64", "--config.test_size=256",
                 "--config.num_epochs=1", "--repeats=1", "--cache=both", f"--out={out}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads(out.read_text())
  assert result["config"] == "experiments/speedrun_91.py" and result["cache"] == "both"
  assert (result["target"], result["limit_s"]) == (0.91, 20.0)
  for kind in ("cold", "warm"):
    summary = result[kind]
    (run,) = summary["runs"]
    assert (run["seed"], run["reached_s"], run["epoch"], len(run["history"])) == (0, None, None, 1)
    assert {k: summary[k] for k in summary if k != "runs"} == {
        "reached": 0, "reached_within_limit": 0, "every_seed_reached": False,
        "not_reached_seeds": [0], "mean_s": None, "std_s": None, "max_s": None}
    assert (f"  {kind} compilation cache: 0 of 1 seeds reached; seed(s) 0 did not; 0 of 1 "
            "within the 20 s limit\n") in proc.stdout
  # The warm rerun is the same run as the cold one (deterministic), only its time differs.
  assert (result["cold"]["runs"][0]["history"][0]["test_accuracy"]
          == result["warm"]["runs"][0]["history"][0]["test_accuracy"])


def test_speedrun_of_a_config_without_a_target_is_refused_in_one_line(tmp_path):
  proc = run_cli("speedrun", "--config=experiments/fast.py", f"--out={tmp_path}/t.json")
  line = one_line_error(proc)
  assert line == ("cnnlab: error: the config sets no speedrun target (config.speedrun.target); "
                  "pass --target=0.91, or a speedrun config, e.g. "
                  "--config=experiments/speedrun_91.py")
  assert not (tmp_path / "t.json").exists()


def test_config_overrides_of_a_command_line_both_forms():
  from cnnlab.bench.record import config_overrides
  argv = ["--target=0.91", "--config.model.widths=(16,32)", "--config.seed", "3",
          "--repeats=1", "--config.data_dir", "--out=x.json"]
  assert config_overrides(argv) == ["--config.model.widths=(16,32)", "--config.seed=3",
                                    "--config.data_dir"]


SPEEDRUNS = {"speedrun_91": (0.91, 20.0), "speedrun_93": (0.93, 90.0),
             "speedrun_94": (0.94, 480.0)}  # the targets and their time limits


def test_each_speedrun_config_holds_its_target_and_limit_and_says_its_command():
  import importlib
  from cnnlab import config as config_lib
  from cnnlab.bench import speedrun
  for name, (target, limit) in SPEEDRUNS.items():
    module = importlib.import_module(f"experiments.{name}")
    assert f"./launch.sh speedrun --config=experiments/{name}.py" in module.__doc__
    config = module.get_config()
    config_lib.check(config)
    assert speedrun.settings(config) == (target, limit)
    assert speedrun.settings(config, 0.5, 0.0) == (0.5, None)  # the flags win; 0 = no limit


@needs_data
@pytest.mark.parametrize("name", ["speedrun_93", "speedrun_94"])  # 91 trains above
def test_speedrun_config_trains_a_step(name):
  """One real training step (train_size = one batch) and a test evaluation through the
  time-to-accuracy run itself; a time limit of 0 s stops it after that first epoch of two."""
  import importlib
  from cnnlab.bench import time_to_accuracy
  config = importlib.import_module(f"experiments.{name}").get_config()
  config.unlock()
  config.update(data_dir=DATA_DIR, batch_size=16, train_size=16, num_epochs=2, test_size=256,
                eval_batch_size=64)  # batch 16: 2 image groups, not 8 (compile time)
  result = time_to_accuracy.run(config, 1.0, log=lambda line: None, limit_s=0.0)
  (epoch,) = result["history"]
  assert result["reached_s"] is None and epoch["epoch"] == 1
  assert 0.0 <= epoch["test_accuracy"] <= 1.0


def test_repo_relative_paths_and_the_committed_records_use_them(tmp_path, monkeypatch):
  from cnnlab.bench import record
  assert record.repo_relative(os.path.join(REPO, "experiments", "fast.py")) == "experiments/fast.py"
  monkeypatch.chdir(REPO)
  assert record.repo_relative("experiments/../experiments/fast.py") == "experiments/fast.py"
  assert record.repo_relative(str(tmp_path / "mine.py")) == str(tmp_path / "mine.py")
  results = os.path.join(REPO, "bench", "results")
  for name in sorted(os.listdir(results)):
    with open(os.path.join(results, name)) as f:
      config = json.load(f)["config"]
    assert not os.path.isabs(config) and os.path.isfile(os.path.join(REPO, config)), name


def without_torch(tmp_path, *args):
  """`python -m cnnlab.cli ARGS` where `import torch` fails, as on a machine without it."""
  hidden = tmp_path / "no_torch" / "torch"
  hidden.mkdir(parents=True)
  (hidden / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
  env = dict(os.environ, PYTHONPATH=f"{hidden.parent}{os.pathsep}{REPO}")
  return subprocess.run([sys.executable, "-m", "cnnlab.cli", *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=600)


def test_bench_without_torch_asked_for_explicitly_is_one_line_exit_2(tmp_path):
  proc = without_torch(tmp_path, "bench", "--against=torch", f"--out={tmp_path}/b.json")
  assert proc.returncode == 2 and proc.stdout == ""
  assert proc.stderr == ("cnnlab: error: --against=torch needs PyTorch (pip install -e "
                         "'.[bench]', or torch's CPU build); or pass --against=none\n")
  assert not (tmp_path / "b.json").exists()


@needs_data
def test_throughput_record_holds_every_field_the_issue_names(tmp_path):
  """The default --against=auto without PyTorch: a one-line note, then cnnlab alone."""
  out = tmp_path / "bench.json"
  proc = without_torch(tmp_path, "bench", "--batch_sizes=16", "--repeats=1",
                       "--config=experiments/smoke.py", f"--out={out}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  notes = [line for line in proc.stderr.splitlines() if line.startswith("cnnlab:")]
  assert notes == ["cnnlab: note: PyTorch is not installed, so cnnlab is measured alone "
                   "(pip install -e '.[bench]' adds the comparison)"]
  assert f"wrote {out}" in proc.stdout
  result = json.loads(out.read_text())
  assert result["against"] == "none" and result["machine"]["torch"] is None
  assert not any(k.startswith("torch") or k == "ratio_vs_torch" for k in result["results"][0])
  assert {"cpu", "cores", "jax", "jaxlib", "flax"} <= set(result["machine"])
  assert result["config"] == "experiments/smoke.py" and result["git"]["commit"] == _git_head()
  (rec,) = result["results"]
  assert rec["batch_size"] == 16
  assert rec["train_images_per_s"]["median"] > 0 and rec["eval_images_per_s"] > 0
  # A fresh process with an empty cache compiles every program (init, step); the rerun with
  # the cache warm compiles none of them: JAX's own cache events, not timings.
  events = rec["compile_cache_events"]
  assert events["cold"]["hits"] == 0 and events["cold"]["misses"] >= 2
  assert events["cached"] == {"hits": events["cold"]["misses"], "misses": 0}
  # XLA's FLOP count of this very step (the same jax here), per image: for the course CNN
  # 23.5 MFLOP at batch 16 with jaxlib 0.10.2, 4% under the analytic 3 x forward (summary)
  # minus conv1's unneeded input gradient.
  import sys
  sys.path.insert(0, "experiments")
  from cnnlab.bench.throughput import JaxTrainer
  from cnnlab.inspect.layers import summarize
  from experiments import smoke
  assert rec["flops_per_image"] == JaxTrainer(smoke.get_config(), 16).flops_per_image()
  analytic = 3 * summarize("textbook_cnn")["flops"] - summarize("textbook_cnn")["rows"][0]["flops"]
  assert rec["flops_per_image"] == pytest.approx(analytic, rel=0.05)
  # The peak fraction is each round's achieved GFLOP/s over the matmul peak of that round.
  (jax_rate,), (peak,) = rec["train_images_per_s"]["all"], rec["matmul_peak_gflops"]["all"]
  assert rec["fraction_of_matmul_peak"]["median"] == pytest.approx(
      jax_rate * rec["flops_per_image"] / 1e9 / peak,  # "all" holds 0.1-rounded values:
      rel=0.05 / jax_rate + 0.05 / peak + 1e-9)  # their rounding error, not a fixed 2e-3


@needs_data
def test_seeds_vs_sequential_times_both_ways_and_they_train_the_same_seeds(tmp_path):
  out = tmp_path / "seeds.json"
  proc = run_cli("bench", "--seeds_vs_sequential=2", "--config=experiments/smoke.py",
                 f"--config.data_dir={DATA_DIR}", "--config.train_size=256",
                 "--config.num_epochs=1", f"--out={out}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads(out.read_text())
  assert result["num_seeds"] == 2 and len(result["sequential_each_s"]) == 2
  assert result["speedup"] == pytest.approx(result["sequential_s"] / result["vmapped_s"])
  # 8 steps: the vmapped seeds are the sequential runs up to float rounding.
  assert result["test_accuracy_per_seed_vmapped"] == pytest.approx(
      result["test_accuracy_per_seed_sequential"], abs=2e-3)
  assert result["test_accuracy_per_seed_vmapped"][0] != result["test_accuracy_per_seed_vmapped"][1]



def test_plot_draws_one_panel_per_target_from_the_committed_records(tmp_path):
  """The speedrun figure: the 0.94 record split over two files is one panel of three seeds."""
  from cnnlab.bench import curves
  paths = [os.path.join(REPO, "bench", "results", f"speedrun-{name}-2026-12-02-2core.json")
           for name in ("0.91", "0.93", "0.94-seed0", "0.94-seeds1-2")]
  fig = curves.figure([curves.load(p) for p in paths])
  panels = fig.axes
  assert [ax.get_title() for ax in panels] == [f"{t} test accuracy" for t in ("0.91", "0.93", "0.94")]
  seeds = [[line.get_label() for line in ax.get_lines() if line.get_label().startswith("seed")]
           for ax in panels]
  assert seeds == [["seed 0", "seed 1", "seed 2"]] * 3
  seed0_093 = panels[1].get_lines()[0]  # the 0.93 record's seed 0, epoch by epoch
  assert list(seed0_093.get_ydata()) == pytest.approx([0.8650, 0.8943, 0.9120, 0.9218, 0.9297],
                                                      abs=5e-5)
  assert panels[0].get_xlim()[1] == pytest.approx(1.05 * 37.54, abs=0.05)  # past the 20 s limit
  out = tmp_path / "curve.png"
  proc = run_cli("speedrun", f"--plot={','.join(paths)}", f"--out={out}")
  assert proc.returncode == 0 and out.read_bytes()[:4] == b"\x89PNG", proc.stderr[-2000:]
