"""The streamed mode in whole runs: killed and resumed, and data larger than its memory budget
(several processes at once: test_input_stream_folder_runs.py, which uses the helpers here).
Every run is a subprocess or a real training of the tiny reliability config (512 Fashion-MNIST
images, 16 steps an epoch) or of a small drawn folder, so all are slow.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO, needs_data, tiny
from test_multiprocess import PEER_TIMEOUT_S, _free_port
from test_reliability import TINY_FLAGS, _assert_same_run

pytestmark = [needs_data, pytest.mark.slow]
STREAM = "--config.input=stream"


def test_stream_resumes_bit_identical_after_sigkill_in_an_epoch(ref, tmp_path):
  workdir = str(tmp_path / "run")
  args = [sys.executable, "-m", "cnnlab.cli", "train", *TINY_FLAGS, STREAM,
          "--config.num_epochs=3", f"--workdir={workdir}"]
  env = dict(os.environ, PYTHONPATH=REPO)
  proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
  deadline = time.time() + 240
  while not os.path.isdir(os.path.join(workdir, "checkpoints", "16")):  # epoch 1 saved
    assert proc.poll() is None and time.time() < deadline, proc.stderr.read()[-3000:]
    time.sleep(0.001)
  proc.kill()  # SIGKILL, in epoch 2
  assert proc.wait() == -signal.SIGKILL
  proc.stderr.close()
  done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  assert f"resuming {workdir} from step 16 (epoch 2, batch 0)" in done.stdout
  _assert_same_run(workdir, ref)  # the resident run's metrics, digest and test numbers


def test_stream_resumes_bit_identical_from_a_step_inside_an_epoch(ref, tmp_path):
  """Ctrl-C after step 16 + 5 saves that step; the resume starts the epoch's stream there."""
  from cnnlab.train import epochs, train_and_evaluate
  bar, workdir, logged = epochs.tqdm, str(tmp_path / "run"), []

  def ctrl_c_in_epoch_2(iterable, **kwargs):
    for i, item in enumerate(bar(iterable, **kwargs)):
      if item == 4 and kwargs["desc"] == "epoch 2":
        os.kill(os.getpid(), signal.SIGINT)
      yield item

  epochs.tqdm = ctrl_c_in_epoch_2
  try:
    with pytest.raises(SystemExit, match=str(128 + signal.SIGINT)):
      train_and_evaluate(tiny(input="stream"), workdir, log=logged.append)
  finally:
    epochs.tqdm = bar
  assert logged[-1].startswith("cnnlab: SIGINT received: saved step 21 to ")
  train_and_evaluate(tiny(input="stream"), workdir, log=logged.append)
  assert f"resuming {workdir} from step 21 (epoch 2, batch 5)" in logged
  _assert_same_run(workdir, ref)


MEMORY_CHILD = r"""
import json, sys
import jax
from experiments import fashion_dnn
from cnnlab import compilation, parallel
from cnnlab.input import arrays
from cnnlab.train import epochs, evaluate, state as state_lib, step as step_lib

compilation.use_persistent_cache()  # evaluation's background compile: a cache hit, not ~10 MiB

def rss(field):  # bytes; VmHWM is the peak since the last reset_peak()
  line = next(l for l in open("/proc/self/status") if l.startswith(field + ":"))
  return int(line.split()[1]) * 1024

def reset_peak():
  with open("/proc/self/clear_refs", "w") as f:
    f.write("5")

def config(mode):
  c = fashion_dnn.get_config()
  c.batch_size, c.eval_batch_size, c.num_epochs = 200, 200, 1
  c.input, c.input_budget_mib = mode, int(sys.argv[2])
  return c

files = lambda name: (f"{sys.argv[1]}/{name}_images.npy", f"{sys.argv[1]}/{name}_labels.npy")
validation = tuple(a[:400] for a in arrays.NpyFiles(*files("small")).arrays())
big, mesh, out, bar = arrays.NpyFiles(*files("big")), parallel.make_mesh(), {}, epochs.tqdm
job = epochs.make_job(config("auto"), mesh, big, validation)
tx = state_lib.make_optimizer(config("auto").optimizer, job.steps_per_epoch)
state = state_lib.create_train_state(state_lib.model_of(config("auto")), tx,
                                     jax.random.PRNGKey(0), big.shape[1:])
state, sums = parallel.put((state, step_lib.zero_sums()), job.replicated)
evaluate.evaluate(state, job.eval_batches)  # compiled before the measure

def warm_then_measure(iterable, **kwargs):
  for i, item in enumerate(bar(iterable, **kwargs)):
    if i == 4:  # every program compiled, the stream's threads running
      reset_peak()
    if i == 16:  # the peak of 12 warm steps: the overhead
      out["overhead"] = rss("VmHWM")
      reset_peak()
    yield item

def measured(state, sums, record, train, seconds):
  out.update(peak=rss("VmHWM"), count=float(train["count"]))

epochs.tqdm = warm_then_measure
epochs.run_epochs(job, state, sums, measured)
out["mode"] = type(job.batches).__name__
reset_peak()
out["resident_before"] = rss("VmRSS")
epochs.make_job(config("resident"), mesh, big, validation)
out["resident_peak"] = rss("VmHWM")
print(json.dumps(out))
"""


def test_stream_trains_on_data_four_times_its_memory_budget_in_bounded_memory(tmp_path):
  """A generated dataset (random pixels, not real data) of 96 MiB, 4x a 24 MiB budget: `auto`
  streams it, and over the rest of the epoch (and its evaluation) the process's peak RSS stays
  within the budget of its peak over warm steps 4-16 of 123 (the overhead: Python, JAX, the
  compiled programs, Grain's threads and the batches in flight; measured 305-315 MiB; the
  rest of the epoch: +0.6 to +14 MiB over 64 MiB). The control: made resident, 64 MiB of
  the same data raised the peak by 59-71 MiB: this measure sees the data.
  glibc's mmap threshold is fixed for the child: by default it rises after the first large
  frees, and freed batch buffers then stay in the heap (the RSS rose in steps of ~8 MiB at
  random moments whatever the data size: +0.4 to +22 MiB over 64 MiB; over 20 MiB, +9.7)."""
  budget_mib, rng = 24, np.random.RandomState(0)
  for name, n in (("small", 400), ("big", 24600)):  # 24,600 x 64 x 64 bytes = 96.1 MiB
    np.save(tmp_path / f"{name}_images.npy", rng.randint(0, 256, (n, 64, 64, 1), np.uint8))
    np.save(tmp_path / f"{name}_labels.npy", rng.randint(0, 10, n).astype(np.int32))
  size = os.path.getsize(tmp_path / "big_images.npy")
  assert size >= 4 * budget_mib * 2 ** 20
  env = dict(os.environ, PYTHONPATH=REPO, MALLOC_MMAP_THRESHOLD_=str(128 * 1024))
  proc = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(tmp_path), str(budget_mib)],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.splitlines()[-1])
  mib = lambda b: f"{b / 2 ** 20:.1f} MiB"
  print(f"overhead {mib(out['overhead'])}; streamed epoch peak +"
        f"{mib(out['peak'] - out['overhead'])}; resident +"
        f"{mib(out['resident_peak'] - out['resident_before'])}")
  assert (out["mode"], out["count"]) == ("Stream", 24600)  # auto chose stream; every batch
  assert out["peak"] <= out["overhead"] + budget_mib * 2 ** 20
  assert out["resident_peak"] >= out["resident_before"] + 3 * budget_mib * 2 ** 20


COUNTING_RUNNER = r"""
import atexit, os, sys
from cnnlab.input import stream
read, get = [], stream.Picked.__getitem__
def counted(self, i):  # the training-split index of every example this process reads
  read.append(int(self.indices[i]))
  return get(self, i)
stream.Picked.__getitem__ = counted
path = os.environ["READS"] + os.environ.get("JAX_PROCESS_ID", "0")
atexit.register(lambda: open(path, "w").write(" ".join(map(str, read))))
from cnnlab.cli.__main__ import main
sys.exit(main(["cnnlab", "train"] + sys.argv[1:]))
"""


EPOCHS = 2
# A PIL-drawn folder (tests/shapes.py: fake data) of 100 pictures: 20 drawn for the test split,
# 16 of the remaining 80 for validation, 64 to train: 4 steps of 16 an epoch.
FOLDER = ["--config=experiments/smoke.py", "--config.image_size=12", "--config.train_size=0",
          "--config.validation_size=0", "--config.test_size=0", "--config.batch_size=16",
          "--config.eval_batch_size=20"]


def _start(workdir, processes, devices, env, flags):
  """test_multiprocess.start's processes, running COUNTING_RUNNER (`train` plus counting)."""
  base = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu",
              XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
              CNNLAB_PEER_TIMEOUT_S=str(PEER_TIMEOUT_S), **env)
  args = [sys.executable, "-c", COUNTING_RUNNER, f"--workdir={workdir}", *flags, STREAM,
          f"--config.num_epochs={EPOCHS}"]
  if processes > 1:
    base.update(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{_free_port()}",
                JAX_NUM_PROCESSES=str(processes))
    args.append("--distributed")
  return [subprocess.Popen(args, cwd=REPO, env=dict(base, JAX_PROCESS_ID=str(i)),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
          for i in range(processes)]


def _reads(prefix, process):
  return [int(i) for i in open(f"{prefix}{process}").read().split()]
