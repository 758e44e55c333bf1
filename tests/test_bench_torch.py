"""`bench --against=torch` with PyTorch installed: torch.compile timed next to eager, and a
torch.compile that fails noted in one line (tests/test_bench.py covers bench without torch).
"""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, needs_torch, run_cli

pytestmark = pytest.mark.slow  # the quick tier skips it; --all and CI run it


@needs_torch
@pytest.mark.timeout(900)  # torch.compile alone took 73 s on the shared 2-core machine
def test_against_torch_times_eager_and_torch_compile_in_the_same_rounds(tmp_path):
  out = tmp_path / "bench.json"
  proc = run_cli("bench", "--against=torch", "--batch_sizes=16", "--repeats=1",
                 "--config=experiments/smoke.py", f"--out={out}", timeout=900)
  assert proc.returncode == 0, proc.stderr[-2000:]
  (rec,) = json.loads(out.read_text())["results"]
  assert rec["torch_compile_error"] is None and rec["torch_compile_s"] > 0
  threads = {str(t) for t in {os.cpu_count(), 1}}
  assert set(rec["torch_compile_s_by_threads"]) == threads  # one graph per thread count
  assert rec["torch_compile_s"] == rec["torch_compile_s_by_threads"][str(os.cpu_count())]
  for kind in ("torch", "torch_compile"):
    assert set(rec[f"{kind}_train_images_per_s_by_threads"]) == threads
    best = max(v["median"] for v in rec[f"{kind}_train_images_per_s_by_threads"].values())
    assert rec[f"{kind}_train_images_per_s"]["median"] == best  # the faster thread count
  # One round: each ratio is cnnlab's rate over that round's torch rate.
  jax_rate = rec["train_images_per_s"]["median"]
  assert rec["ratio_vs_torch"]["median"] == jax_rate / rec["torch_train_images_per_s"]["median"]
  assert rec["ratio_vs_torch_compile"]["median"] == (
      jax_rate / rec["torch_compile_train_images_per_s"]["median"])
  header, units, row = proc.stdout.splitlines()[-4:-1]
  assert header.split() == ["batch", "cnnlab", "img/s", "eager", "img/s", "compile", "img/s",
                            "cnnlab/eager", "cnnlab/compile", "peak", "frac", "cnnlab",
                            "compile", "s", "torch.compile", "s"]
  assert row.split()[0] == "16" and row.split()[-1] == f"{rec['torch_compile_s']:.1f}"
  assert "torch.compile failed" not in proc.stdout


@needs_torch
@pytest.mark.timeout(600)
def test_a_failing_torch_compile_is_one_line_and_eager_still_runs(tmp_path):
  """No C++ compiler for inductor (CXX names a missing one): noted, the run succeeds."""
  out = tmp_path / "bench.json"
  env = dict(os.environ, PYTHONPATH=REPO, CXX="/nonexistent/g++")
  proc = subprocess.run([sys.executable, "-m", "cnnlab.cli", "bench", "--against=torch",
                         "--batch_sizes=8", "--repeats=1", "--config=experiments/smoke.py",
                         f"--out={out}"], cwd=REPO, env=env, capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  (rec,) = json.loads(out.read_text())["results"]
  error = rec["torch_compile_error"]
  assert "No working C++ compiler" in error and "/nonexistent/g++" in error and "\n" not in error
  assert rec["torch_compile_s"] is None and rec["torch_compile_s_by_threads"] == {}
  assert "torch_compile_train_images_per_s" not in rec
  assert rec["torch_train_images_per_s"]["median"] > 0 and rec["ratio_vs_torch"]["median"] > 0
  failed = [l for l in proc.stdout.splitlines() if "torch.compile failed" in l]
  assert failed == [f"torch.compile failed at batch 8 (eager torch measured alone): {error}"]
