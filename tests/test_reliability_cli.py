"""Reliability from the shell: the workdir lock, the deterministic-GPU switch, bad flags.
Each test starts a subprocess, as a user would (helpers come from test_reliability.py)."""

import os
import subprocess
import sys

import pytest

from cnnlab import rundir
from conftest import REPO, needs_data, run_cli
from conftest import one_line_error
from test_reliability import TINY_FLAGS

pytestmark = needs_data

# --- Concurrency ---------------------------------------------------------------------------

@pytest.mark.slow
def test_second_run_on_a_locked_workdir_is_refused_naming_the_pid(tmp_path):
  workdir = str(tmp_path / "run")
  os.makedirs(workdir)
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time; from cnnlab import rundir; "
       "lock = rundir.locked(sys.argv[1]); lock.__enter__(); print('locked', flush=True); "
       "time.sleep(300)",
       workdir], env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    proc = run_cli("train", *TINY_FLAGS, f"--workdir={workdir}")
    one_line_error(proc, f"in use by pid {holder.pid}")
  finally:
    holder.kill()
    holder.wait()
  assert not os.path.exists(os.path.join(workdir, "checkpoints"))  # nothing interleaved
  with rundir.locked(workdir):  # the dead holder's lock file is no obstacle
    assert open(os.path.join(workdir, ".lock")).read().strip() == str(os.getpid())


# --- Deterministic GPU mode and flags ------------------------------------------------------

PROBE = r"""
import os, sys
import cnnlab.train
from jax._src import xla_bridge
def fake(config, workdir, resume=True, on_purpose=()):
  print("XLA_FLAGS=" + os.environ.get("XLA_FLAGS", ""))
  print("backends initialised:", xla_bridge.backends_are_initialized())
cnnlab.train.train_and_evaluate = fake
from cnnlab.cli import common, train
common.run(train.main, argv=["cnnlab train"] + sys.argv[1:])
"""


@pytest.mark.parametrize("deterministic", [True, False])
def test_deterministic_sets_xla_flags_before_jax_starts(deterministic, tmp_path):
  env = dict(os.environ, PYTHONPATH=REPO, CNNLAB_JAX_CACHE="", XLA_FLAGS="--xla_cpu_foo=1")
  proc = subprocess.run([sys.executable, "-c", PROBE, *TINY_FLAGS, f"--workdir={tmp_path}",
                         f"--config.deterministic={deterministic}"],
                        env=env, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  want = "--xla_cpu_foo=1 --xla_gpu_deterministic_ops=true" if deterministic else "--xla_cpu_foo=1"
  assert f"XLA_FLAGS={want}\n" in proc.stdout, proc.stdout
  assert "backends initialised: False" in proc.stdout


@pytest.mark.parametrize("flag,needle", [
    ("--resume=maybe", "--resume"), ("--noresume=1", "--noresume"),
    ("--config.deterministic=perhaps", "deterministic"),
    ("--config.skip_nonfinite_updates=2x", "skip_nonfinite_updates")])
def test_bad_flag_is_one_line_and_exit_2(flag, needle, tmp_path):
  one_line_error(run_cli("train", *TINY_FLAGS, f"--workdir={tmp_path / 'w'}", flag), needle)


def test_a_flag_swallowed_as_a_path_is_refused(tmp_path):
  proc = run_cli("train", *TINY_FLAGS, "--workdir", "--config.num_epochs=1")
  one_line_error(proc, "--workdir", "looks like a flag")
  assert not os.path.exists(os.path.join(REPO, "--config.num_epochs=1"))


def test_importing_the_library_changes_no_process_wide_setting():
  """Quieting Orbax's background tracebacks is a command's set-up (cli/common.setup_jax), so
  a notebook that imports cnnlab keeps its own logging filters and unraisable hook."""
  probe = ("import logging, sys; hook = sys.unraisablehook; "
           "import cnnlab.checkpoint, cnnlab.train.loop; "
           "print(sys.unraisablehook is hook, logging.getLogger('absl').filters, "
           "logging.getLogger('asyncio').filters)")
  proc = subprocess.run([sys.executable, "-c", probe], env=dict(os.environ, PYTHONPATH=REPO),
                        capture_output=True, text=True, timeout=120)
  assert proc.stdout == "True [] []\n", proc.stderr[-3000:]
