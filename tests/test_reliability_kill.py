"""Kill anywhere: SIGKILL a training subprocess at seeded random moments (start-up, restore, a
step, a checkpoint write, an evaluation, the final write) 10 times, resuming each time; the end
is bit-identical to an uninterrupted run. Helpers and the reference run come from test_reliability.py."""

import os
import random
import subprocess
import sys
import time

import pytest

from cnnlab.errors import UserError
from cnnlab.train import train_and_evaluate
from conftest import REPO, needs_data
from conftest import tiny
from test_reliability import TINY_FLAGS, TMP, _assert_same_run, _steps, quiet

pytestmark = [needs_data, pytest.mark.slow]

RUNNER = r"""
import os, sys
fd = os.open(os.environ["PHASES"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
mark = lambda s: os.write(fd, s.encode() + b"\n")
import jax
def wrap(f, name):  # blocks, so that the marks show where the time goes (not the dispatch)
  def g(*a, **k):
    mark(name); out = jax.block_until_ready(f(*a, **k)); mark(name + "-done"); return out
  return g
import cnnlab.train.epochs as t, cnnlab.train.step as s, cnnlab.train.loop as l, cnnlab.rundir as r
mark("start")
t.evaluate = wrap(t.evaluate, "eval")
make = s.make_train_batch
s.make_train_batch = lambda *a, **k: wrap(make(*a, **k), "step")
l.checkpoint.restore_latest_good = wrap(l.checkpoint.restore_latest_good, "restore")
r.Run.write_results = wrap(r.Run.write_results, "results")
from cnnlab.cli.__main__ import main
sys.exit(main(["cnnlab", "train"] + sys.argv[1:]))
"""


def _phases(path):
  return open(path).read().split() if os.path.exists(path) else []


def _kill_at(proc, mode, n, delay, phases, ckpt_dir):
  """SIGKILL `proc` `delay` s after the n-th `mode` event; the phase it died in (None: exited)."""
  def ready():
    if mode == "ckpt":  # the n-th write of this process (after an epoch), not a leftover
      return (_phases(phases).count("eval-done") >= n and os.path.isdir(ckpt_dir)
              and any(d.endswith(TMP) for d in os.listdir(ckpt_dir)))
    return _phases(phases).count(mode) >= n
  deadline = time.time() + 180
  while proc.poll() is None and not ready():
    assert time.time() < deadline, "the run made no progress"
    time.sleep(0.001)
  time.sleep(delay)
  proc.kill()
  if proc.wait() != -9:
    return None
  last = (_phases(phases) or ["start-up"])[-1]
  where = {"step": "step", "step-done": "step", "eval": "eval", "start": "start-up",
           "restore": "restore", "results": "results write"}.get(last, f"after {last}")
  if os.path.isdir(ckpt_dir) and any(d.endswith(TMP) for d in os.listdir(ckpt_dir)):
    where += "+checkpoint write"  # Orbax writes in the background, during the next steps
  return where


def test_sigkill_anywhere_ten_times_then_resume_is_bit_identical(ref, tmp_path):
  """10 SIGKILLs drawn over the whole run (start-up, restore, steps, checkpoint writes,
  evaluations, the final results write), seeded. Every relaunch must resume from the newest
  step on disk (its own "resuming ... from step S" line), and the end is bit-identical."""
  rng = random.Random(20261123)
  workdir, ckpt_dir = str(tmp_path / "run"), str(tmp_path / "run" / "checkpoints")
  args = [sys.executable, "-c", RUNNER, *TINY_FLAGS, "--config.num_epochs=3",
          f"--workdir={workdir}"]
  env = dict(os.environ, PYTHONPATH=REPO, CNNLAB_JAX_CACHE=str(tmp_path / "jax_cache"))
  modes = ["step", "ckpt", "eval"] * 2 + ["start"]
  rng.shuffle(modes)
  modes += ["restore", "results"]  # late: by then there are steps to restore; the last write
  killed, resumed = [], []
  for i, mode in enumerate(modes):
    on_disk = max(_steps(workdir), default=None) if os.path.isdir(ckpt_dir) else None
    left = 48 - (on_disk or 0)  # steps this launch has to train (3 epochs of 16)
    # Kill points spread over the rest of the run: a step anywhere in it, the n-th
    # evaluation or checkpoint write of this launch, or a moment of start-up.
    n = {"step": rng.randint(1, max(left - 1, 1)), "start": 1}.get(
        mode, rng.randint(1, max(-(-left // 16), 1)))
    delay = rng.uniform(0, {"ckpt": 0.02, "start": 1.5}.get(mode, 0.05))
    phases, out = str(tmp_path / f"phases{i}"), tmp_path / f"stdout{i}"
    with open(out, "w") as stdout:
      proc = subprocess.Popen(args, env=dict(env, PHASES=phases), stdout=stdout,
                              stderr=subprocess.PIPE)
    if i == 0:  # a second run on the same workdir is refused, naming the owner's pid
      while not set(_phases(phases)) - {"start"} and proc.poll() is None:  # it holds the lock
        time.sleep(0.01)
      with pytest.raises(UserError, match=f"in use by pid {proc.pid}"):
        train_and_evaluate(tiny(), workdir, log=quiet)
    where = _kill_at(proc, mode, n, delay, phases, ckpt_dir)
    assert where is not None or proc.returncode == 0, proc.stderr.read()[-3000:]
    proc.stderr.close()
    if "step" in _phases(phases):  # it got past restore: it must have resumed from on_disk
      line = [l for l in out.read_text().splitlines() if l.startswith("resuming")]
      assert line == ([f"resuming {workdir} from step {on_disk} "
                       f"(epoch {on_disk // 16 + 1}, batch {on_disk % 16})"] if on_disk else []), (
          i, on_disk, line)
      resumed.append(on_disk)
    if where:
      killed.append(f"{mode}: {where}")
      assert all(str(s).isdigit() for s in _steps(workdir))  # a tmp dir is never a step
  assert len(killed) >= 8, killed
  assert len([s for s in resumed if s]) >= 4, resumed  # many launches really resumed
  hit = {part for where in killed for part in where.split(": ")[1].split("+")}
  assert {"step", "checkpoint write", "eval", "start-up", "restore"} <= hit, killed
  assert open(os.path.join(workdir, ".lock")).read().strip().isdigit()  # a dead owner's lock
  done = subprocess.run(args, env=dict(env, PHASES=str(tmp_path / "last")),
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  assert not [d for d in os.listdir(ckpt_dir) if d.endswith(TMP)]
  _assert_same_run(workdir, ref)
  print("kills:", killed, "resumed from:", resumed)


def test_kill_phase_is_reported_with_a_pending_write(tmp_path):
  """The classifier of the kill test: a leftover tmp directory means "during a write"."""
  phases, ckpt = tmp_path / "phases", tmp_path / "checkpoints"
  phases.write_text("step\nstep-done\n")
  os.makedirs(ckpt / ("16" + TMP))
  done = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
  assert _kill_at(done, "step", 1, 0, str(phases), str(ckpt)) == "step+checkpoint write"
