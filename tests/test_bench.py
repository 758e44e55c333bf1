"""`bench`: the throughput record and the time-to-accuracy runs, end to end on tiny configs.

These check what the JSON holds and that the runs are real (fresh processes, the test set
read, the same numbers each time); the speed itself is measured by `./launch.sh bench`.
"""

import json
import os
import subprocess
import sys

import pytest

from conftest import DATA_DIR, REPO, needs_data, run_cli

pytestmark = pytest.mark.slow  # the quick tier skips it; --all and CI run it


@needs_data
def test_time_to_accuracy_runs_fresh_processes_and_reports_when_the_target_is_reached(tmp_path):
  out = tmp_path / "tta.json"
  proc = run_cli("bench", "--time-to-accuracy=0.6", "--config=experiments/smoke.py",
                 f"--config.data_dir={DATA_DIR}", "--repeats=1", f"--out={out}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads(out.read_text())
  assert result["target"] == 0.6 and result["config"].endswith("experiments/smoke.py")
  runs = result["cold"]["runs"] + result["warm"]["runs"]
  assert len(runs) == 2
  for run in runs:
    assert run["reached_s"] > 0 and run["epoch"] in (1, 2)
    assert run["history"][-1]["test_accuracy"] >= 0.6  # smoke: ~0.7 on 1,000 test images
    assert run["history"][-1]["s"] == run["reached_s"]
  # Same config and seed in two fresh processes (cold and warm cache): the same accuracies.
  assert runs[0]["history"] == [dict(h, s=runs[0]["history"][i]["s"])
                                for i, h in enumerate(runs[1]["history"])]
  assert result["cold"]["median_s"] == runs[0]["reached_s"]
  assert "time to test accuracy 0.6" in proc.stdout


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
  assert {"cpu", "cores", "jax", "flax"} <= set(result["machine"])
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
