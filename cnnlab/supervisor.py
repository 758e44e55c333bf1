"""`train --distributed` runs as two processes: a parent that never imports JAX, and the child.

Why: JAX's coordination client (jaxlib 0.10.2) answers a lost coordinator (process 0 killed,
its machine gone) by ending the process from a C++ thread within a second: a fatal log line
("... the JAX distributed service detected fatal errors ..."), SIGABRT, pages of stack traces,
exit 134. Python gets no chance to run: the client's hook for it (missed_heartbeat_callback)
crashes with std::bad_cast, and no jax.distributed.initialize() option turns the abort off.

So `supervise()` forks before JAX is imported. The child trains, its stderr piped through the
parent, which passes every line on at once except C++ log lines (glog: `E1201 20:49:24.158204
1908 file.cc:289] ...`) and whatever follows them: those wait up to HOLD_S seconds. If the
child dies of JAX's abort meanwhile, the parent prints cnnlab's one line instead, as a survivor
of any other lost peer does (cnnlab.parallel), and exits 75. Otherwise the held lines are passed
on and the parent exits with the child's code (128+N for signal N). stdout is the child's own.
SIGINT and SIGTERM sent to the parent are passed on; a killed parent takes the child along.
The child's stderr is a pipe, not a terminal, so its progress bar stays off (tqdm's rule).
"""

import ctypes
import os
import re
import select
import signal
import sys
import time

PEER_LOST_EXIT = 75  # EX_TEMPFAIL: nothing is wrong with the command; run it again to resume
HOLD_S = 5.0  # the abort's lines all come within milliseconds; a longer wait only delays logs
_GLOG = re.compile(rb"[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ [^ \]]+:\d+\] ")
_ABORT = b"the JAX distributed service detected fatal errors"
_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # passed on to the child (Ctrl-C, SLURM, kill)
_SI_KERNEL = 0x80  # siginfo code of a signal the terminal sent to the whole process group
_LOST = "cnnlab: error: --distributed: another process of this run stopped"
_report = None  # in the child: the pipe on which it tells the parent its process index


def peer_lost_line(cause, index):
  """The line of a process that stops because another process of its run did."""
  # XLA nests one message per dispatch level ("Error dispatching computation: " x 5): once
  cause = re.sub(r"([^:]+: )\1+", r"\1", " ".join(str(cause).split()))[:160]
  return (f"{_LOST} ({cause}); process {index} exits too. Resume: run the same command on "
          "every process again")


def report_process(index):
  """In a supervised child: tell the parent this process's index (for its line)."""
  global _report
  if _report is not None:
    os.write(_report, f"{index}\n".encode())
    os.close(_report)
    _report = None


def supervise():
  """Fork. Returns in the child, which goes on to train; the parent relays and exits."""
  global _report
  sys.stdout.flush()
  sys.stderr.flush()
  err_r, err_w = os.pipe()
  info_r, info_w = os.pipe()
  parent = os.getpid()
  signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)  # none lost before the parent waits
  pid = os.fork()
  if pid == 0:
    os.close(err_r)
    os.close(info_r)
    os.dup2(err_w, 2)  # Python's sys.stderr and JAX's C++ logs both write to fd 2
    os.close(err_w)
    _report = info_w
    _die_with(parent)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
    return
  os.close(err_w)
  os.close(info_w)
  relay = _Relay()
  status = _relay_until_exit(pid, err_r, relay)
  index = os.read(info_r, 32).decode().strip() or os.environ.get("JAX_PROCESS_ID", "?")
  code = _exit_code(status, relay, index)
  sys.stderr.flush()
  os._exit(code)  # nothing else to run: the child did the work


def _die_with(parent):
  """SIGKILL this child when the parent dies: killing the launched process (kill -9 PID, as a
  scheduler or a test does) must end the training too, not leave it running unseen."""
  try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)
  except (OSError, AttributeError):
    pass
  if os.getppid() != parent:  # the parent died before prctl
    os._exit(128 + signal.SIGKILL)


def _relay_until_exit(pid, fd, relay):
  """Pass the child's stderr and the signals sent to this process on; the child's status."""
  while True:
    ready, _, _ = select.select([fd], [], [], 0.2)
    chunk = os.read(fd, 1 << 16) if ready else b""
    relay.feed(chunk)
    _pass_signals_on(pid)
    relay.release_if_old()
    done, status = os.waitpid(pid, os.WNOHANG)
    if done or (ready and not chunk):  # exited, or closed stderr (then it is exiting)
      status = status if done else os.waitpid(pid, 0)[1]
      while select.select([fd], [], [], 0)[0] and (chunk := os.read(fd, 1 << 16)):
        relay.feed(chunk)  # what it wrote last
      return status


def _pass_signals_on(pid):
  while (info := signal.sigtimedwait(_SIGNALS, 0)) is not None:
    if info.si_code != _SI_KERNEL:  # Ctrl-C in a terminal reached the child already
      os.kill(pid, info.si_signo)


def _exit_code(status, relay, index):
  """This process's exit code; prints the one line when the child died of JAX's abort."""
  code = os.waitstatus_to_exitcode(status)  # -N: killed by signal N
  if code == -signal.SIGABRT and relay.aborted():
    relay.drop()
    gone = b"UNAVAILABLE" in b"".join(relay.dropped)
    cause = ("process 0, which runs the coordinator, is gone" if gone else
             "JAX's coordinator reported a failed process")
    if not relay.said_lost:  # one line, also when the child's watchdog had just noticed
      print(peer_lost_line(cause, index), file=sys.stderr, flush=True)
    return PEER_LOST_EXIT
  if code == PEER_LOST_EXIT:  # the child said so in its line; held lines are that loss's noise
    relay.drop()
  relay.release()
  return 128 - code if code < 0 else code


class _Relay:
  """The child's stderr, line by line: cnnlab's lines and plain lines pass at once; from a C++
  log line on, everything is held (the abort's log, stack trace and Python's fault dump)."""

  def __init__(self):
    self.held, self.dropped, self.partial, self.since = [], [], b"", 0.0
    self.said_lost = False  # the child printed its own peer-lost line (then JAX aborted)

  def feed(self, chunk):
    *lines, self.partial = (self.partial + chunk).split(b"\n")
    for line in lines:
      line += b"\n"
      if line.startswith(b"cnnlab:"):  # cnnlab's own lines are never noise
        self.said_lost |= line.startswith(_LOST.encode())
        self._write(line)
      elif self.held or _GLOG.match(line):
        self.since = self.since if self.held else time.monotonic()
        self.held.append(line)
      else:
        self._write(line)

  def aborted(self):
    return any(_ABORT in line for line in self.held)

  def release_if_old(self):
    if self.held and time.monotonic() - self.since > HOLD_S:
      self.release()

  def release(self):
    self._write(b"".join(self.held) + self.partial)
    self.held, self.partial = [], b""

  def drop(self):
    self.dropped, self.held = self.dropped + self.held, []

  @staticmethod
  def _write(data):
    sys.stderr.buffer.write(data)
    sys.stderr.flush()
