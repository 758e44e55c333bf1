"""cnnlab.supervisor without JAX (a second each): a child that writes what JAX's abort writes.

The real abort (process 0 killed under `train --distributed`) is test_multiprocess.py's
test_multiprocess_killing_process_zero_stops_the_other_in_one_line (slow tier).
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO

CHILD = """
import os, sys, time
from cnnlab import supervisor
supervisor.supervise()
supervisor.report_process(1)
print("a plain line", file=sys.stderr, flush=True)
os.write(2, b"E1201 20:49:24.158289    1908 coordination_service_agent.cc:289] Polled an error\\n")
print("cnnlab: a line of its own", file=sys.stderr, flush=True)
"""
ABORT = """
os.write(2, b"F1201 20:49:24.158298    1908 client.h:80] Terminating process because the JAX "
            b"distributed service detected fatal errors. UNAVAILABLE: Failed to send RPC\\n"
            b"*** Check failure stack trace: ***\\n    @     0x7f4dda840634  SendToLog()\\n")
os.abort()
"""
LINES = ("a plain line\ncnnlab: a line of its own\n"
         "E1201 20:49:24.158289    1908 coordination_service_agent.cc:289] Polled an error\n")


def _run(ending, **kwargs):
  env = dict(os.environ, PYTHONPATH=REPO)
  return subprocess.Popen([sys.executable, "-c", CHILD + ending], env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_jax_abort_becomes_one_line_and_exit_75():
  proc = _run(ABORT)
  _, err = proc.communicate(timeout=60)
  assert proc.returncode == 75
  assert err == ("a plain line\ncnnlab: a line of its own\ncnnlab: error: --distributed: "
                 "another process of this run stopped (process 0, which runs the coordinator, "
                 "is gone); process 1 exits too. Resume: run the same command on every process "
                 "again\n")


@pytest.mark.parametrize("ending, code", [("sys.exit(3)", 3), ("os.kill(os.getpid(), 9)", 137),
                                          ("os.abort()", 134)])  # not JAX's abort: no line of it
def test_other_exits_keep_their_code_and_every_line(ending, code):
  proc = _run(ending)
  _, err = proc.communicate(timeout=60)
  assert proc.returncode == code
  assert err.startswith(LINES)  # Python's fault dump follows os.abort()


def test_sigterm_reaches_the_child_and_a_killed_parent_takes_it_along():
  proc = _run("print(os.getpid(), flush=True); time.sleep(60)")
  proc.stdout.readline()  # the child is running
  proc.send_signal(signal.SIGTERM)
  assert proc.wait(timeout=60) == 128 + signal.SIGTERM
  proc = _run("print(os.getpid(), flush=True); time.sleep(60)")
  child = int(proc.stdout.readline())
  proc.kill()
  proc.wait(timeout=60)
  t0 = time.time()
  while _alive(child) and time.time() - t0 < 10:
    time.sleep(0.05)
  assert not _alive(child)


def _alive(pid):
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().split()[2] != "Z"  # a zombie is dead, waiting to be reaped
  except FileNotFoundError:
    return False
