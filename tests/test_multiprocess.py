"""`train --distributed`: two processes on 127.0.0.1, two CPU devices each, one 4-device mesh.

Every test starts real `python -m cnnlab.cli train --distributed` processes (gloo collectives,
JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID, a free port each), on the smoke
config shrunk to 512 training images (16 steps of 32 per epoch, 3 epochs): ~30-60 s each on 2
loaded cores, so they are slow-tier; the environment checks are quick. Select them all with
`-k "distributed or multiprocess"`.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import DATA_DIR, REPO, needs_data


SHRUNK = ["--config=experiments/smoke.py", f"--data_dir={DATA_DIR}", "--config.train_size=512",
          "--config.validation_size=256", "--config.test_size=256",
          "--config.eval_batch_size=128", "--config.num_epochs=3"]
PEER_TIMEOUT_S = 10


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def start(workdir, *flags, processes=2, devices=2):
  """Start `processes` train processes with `devices` CPU devices each (Popen objects)."""
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
             CNNLAB_PEER_TIMEOUT_S=str(PEER_TIMEOUT_S))
  args = [sys.executable, "-m", "cnnlab.cli", "train", f"--workdir={workdir}", *SHRUNK, *flags]
  if processes == 1:
    return [subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)]
  env.update(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{_free_port()}",
             JAX_NUM_PROCESSES=str(processes))
  return [subprocess.Popen(args + ["--distributed"], cwd=REPO, env=dict(env, JAX_PROCESS_ID=str(i)),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
          for i in range(processes)]


def finish(procs, timeout=300):
  """[(returncode, stdout, stderr)] of each process, in process order."""
  try:
    out = [p.communicate(timeout=timeout) for p in procs]
  except subprocess.TimeoutExpired:  # a hung process must not outlive its test (and eat a core)
    for p in procs:
      p.kill()
    raise
  return [(p.returncode, o, e) for p, (o, e) in zip(procs, out)]


def metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return f.read()


def results(workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    return {k: v for k, v in json.load(f).items() if k != "train_wall_time_s"}


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
  """One finished 2-process run: (workdir, [(returncode, stdout, stderr)] per process)."""
  workdir = str(tmp_path_factory.mktemp("multiprocess") / "run")
  return workdir, finish(start(workdir))


@needs_data
@pytest.mark.slow
def test_distributed_run_equals_one_process_on_four_devices(two_processes, tmp_path):
  workdir, outs = two_processes
  assert [rc for rc, _, _ in outs] == [0, 0], outs
  single = str(tmp_path / "single")
  [(rc, _, err)] = finish(start(single, processes=1, devices=4))
  assert rc == 0, err
  two, one = ([json.loads(l) for l in metrics(d).splitlines()] for d in (workdir, single))
  assert [r["step"] for r in two] == [r["step"] for r in one] == [16, 32, 48]
  # The same batches, keys and 4-way sharding; only the gradient all-reduce differs (gloo
  # across processes vs XLA's in-process sum): float32 rounding of another summation order.
  # After the first epoch's 16 steps that is all (measured 1.3e-7 relative, the same counts);
  # a wrong batch, key or shard would be off by ~1e-2 there. Adam then amplifies it by CPU:
  # after 48 steps 1e-7 on the VM that built this; on a 2-core EPYC with AVX-512 ~50x an
  # epoch, to 7.8e-5 (train loss), 6.7e-4 (val), 1.1e-3 (test), 1-2 of 256 predictions flipped.
  for key in ("train_loss", "val_loss"):
    np.testing.assert_allclose(two[0][key], one[0][key], rtol=1e-5)
    np.testing.assert_allclose([r[key] for r in two[1:]], [r[key] for r in one[1:]], rtol=5e-3)
  for key, images in (("train_accuracy", 512), ("val_accuracy", 256)):
    assert two[0][key] == one[0][key]
    np.testing.assert_allclose([r[key] for r in two[1:]], [r[key] for r in one[1:]],
                               atol=4 / images)
  r2, r1 = results(workdir), results(single)
  assert abs(r2["test_accuracy"] - r1["test_accuracy"]) <= 4 / 256
  np.testing.assert_allclose(r2["test_loss"], r1["test_loss"], rtol=5e-3)


@needs_data
@pytest.mark.slow
def test_distributed_only_process_zero_writes_the_run_directory(two_processes):
  workdir, [(_, out0, _), (_, out1, _)] = two_processes
  assert sorted(os.listdir(workdir)) == [".lock", "checkpoints", "config.json",
                                         "metrics.jsonl", "results.json", "tensorboard",
                                         "timings.jsonl"]
  assert len(metrics(workdir).splitlines()) == 3  # not 6: one writer
  with open(os.path.join(workdir, "timings.jsonl")) as f:
    assert [json.loads(l)["epoch"] for l in f] == [1, 2, 3]
  assert len(os.listdir(os.path.join(workdir, "tensorboard"))) == 1  # one events file
  with open(os.path.join(workdir, ".lock")) as f:
    assert f.read().strip().isdigit()
  epoch_lines = lambda out: [l.split("/")[0] for l in out.splitlines() if l.startswith("epoch")]
  assert epoch_lines(out0) == ["epoch  1", "epoch  2", "epoch  3"] and "test accuracy" in out0
  assert epoch_lines(out1) == [] and "test accuracy" not in out1  # process 1 prints nothing


def _wait_for(path, procs, timeout=240):
  t0 = time.time()
  while not os.path.isdir(path):
    assert time.time() - t0 < timeout and all(p.poll() is None for p in procs), finish(procs)
    time.sleep(0.2)


def _signal(procs, signum):
  for p in procs:
    p.send_signal(signum)
  return finish(procs)


@needs_data
@pytest.mark.slow
def test_multiprocess_resume_after_killing_both_is_bit_identical(two_processes, tmp_path):
  reference, _ = two_processes
  workdir = str(tmp_path / "killed")
  procs = start(workdir)
  _wait_for(os.path.join(workdir, "checkpoints", "16"), procs)  # epoch 1 saved (final name)
  _signal(procs, signal.SIGKILL)
  outs = finish(start(workdir))
  assert [rc for rc, _, _ in outs] == [0, 0], outs
  assert f"resuming {workdir} from step 16 (epoch 2, batch 0)" in outs[0][1]
  assert metrics(workdir) == metrics(reference)
  assert results(workdir) == results(reference)


def _kill_one(workdir, index, *flags):
  """Start 2 processes, SIGKILL process `index` once epoch 1 is saved: the survivor's exit
  code, stderr lines (without gloo's connect log) and seconds from the kill to its exit."""
  procs = start(workdir, *flags)
  _wait_for(os.path.join(workdir, "checkpoints", "16"), procs)
  procs[index].send_signal(signal.SIGKILL)
  t0 = time.time()
  (rc, _, err), = [out for i, out in enumerate(finish(procs, timeout=120)) if i != index]
  return rc, [l for l in err.splitlines() if not l.startswith("[Gloo]")], time.time() - t0


@needs_data
@pytest.mark.slow
def test_multiprocess_killing_one_process_stops_the_other_in_one_line(tmp_path):
  workdir = str(tmp_path / "one_killed")
  rc, lines, seconds = _kill_one(workdir, 1, "--config.num_epochs=30")
  assert lines == [f"cnnlab: error: --distributed: another process of this run stopped "
                   f"(process 1 was silent for {PEER_TIMEOUT_S} s); process 0 exits too. "
                   "Resume: run the same command on every process again"], lines
  assert rc == 75  # EX_TEMPFAIL: run it again
  assert seconds < PEER_TIMEOUT_S + 10  # the silence limit plus a ping and some load
  assert "16" in os.listdir(os.path.join(workdir, "checkpoints"))  # what was saved is kept


@needs_data
@pytest.mark.slow
def test_multiprocess_killing_process_zero_stops_the_other_in_one_line(tmp_path):
  # Process 0 runs JAX's coordinator: without it JAX aborts the others (SIGABRT, pages of C++
  # logs) within a second; cnnlab.supervisor turns that into the one line. (Relaunching both
  # then resumes as after killing both: test_multiprocess_resume_after_killing_both_...)
  workdir = str(tmp_path / "zero_killed")
  rc, lines, seconds = _kill_one(workdir, 0)
  assert lines == ["cnnlab: error: --distributed: another process of this run stopped "
                   "(process 0, which runs the coordinator, is gone); process 1 exits too. "
                   "Resume: run the same command on every process again"], lines
  assert rc == 75
  assert seconds < 10  # measured 0.3 s: JAX notices at once; the rest is margin for load
  assert "16" in os.listdir(os.path.join(workdir, "checkpoints"))  # what was saved is kept


@pytest.mark.parametrize("var, value", [("JAX_PROCESS_ID", "x"), ("JAX_NUM_PROCESSES", "-2"),
                                        ("CNNLAB_PEER_TIMEOUT_S", "soon")])
def test_distributed_environment_errors_name_the_variable(var, value):
  from cnnlab import parallel
  from cnnlab.errors import UserError
  kind = "float" if var == "CNNLAB_PEER_TIMEOUT_S" else "int"
  with pytest.raises(UserError, match=f"^--distributed: {var}='{value}' is not a {kind} >= 0; "):
    parallel.initialize_distributed({var: value})  # raises before JAX is touched


@pytest.mark.slow  # ~10 s: a CLI start
def test_distributed_without_a_cluster_is_one_line_and_creates_nothing(tmp_path):
  env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "SLURM_"))}
  proc = subprocess.run([sys.executable, "-m", "cnnlab.cli", "train", "--distributed",
                         f"--workdir={tmp_path / 'run'}", *SHRUNK], cwd=REPO, timeout=120,
                        env=dict(env, PYTHONPATH=REPO), capture_output=True, text=True)
  assert proc.returncode == 2
  assert proc.stderr == ("cnnlab: error: --distributed could not start (coordinator_address "
                         "should be defined.); run under srun or on a Cloud TPU pod, or set "
                         "JAX_COORDINATOR_ADDRESS=host:port, JAX_NUM_PROCESSES and "
                         "JAX_PROCESS_ID\n")
  assert not os.path.exists(tmp_path / "run")


@needs_data
@pytest.mark.slow
def test_multiprocess_ctrl_c_stops_every_process_at_once(tmp_path):
  """Ctrl-C on every process (a terminal running srun): each exits 130 with one line, in
  seconds. Before, process 1 printed its line and then waited in jax.distributed's shutdown
  barrier for the others, which were gone (> 90 s); and with Python's own KeyboardInterrupt,
  raised wherever the main thread was, one process in ~5 trained on to the end (exit 0)."""
  workdir = str(tmp_path / "interrupted")
  procs = start(workdir, "--config.num_epochs=30")
  _wait_for(os.path.join(workdir, "checkpoints", "16"), procs)
  t0 = time.time()
  outs = _signal(procs, signal.SIGINT)
  for rc, _, err in outs:  # a process whose peer left first may say so instead (exit 75)
    lines = [l for l in err.splitlines() if l.startswith("cnnlab:")]
    assert (rc, lines) == (130, ["cnnlab: interrupted"]) or (
        rc == 75 and len(lines) == 1 and "another process of this run stopped" in lines[0]), outs
  assert time.time() - t0 < 15
  assert "16" in os.listdir(os.path.join(workdir, "checkpoints"))  # what was saved is kept
