"""Run a sweep's points: one `train` subprocess each, `parallel` at a time, signals passed on.

Each point runs as its own process in its own workdir, so a crash (or an out-of-memory kill)
costs that point, not the sweep; re-running skips finished points and resumes the rest,
because `train` already does both.
"""

import os
import re
import signal
import subprocess
import time

from cnnlab import repo, rundir


def last_line(workdir, offsets=(0, 0)):
  """The child's last 'cnnlab: ...' line, else its last stderr (then stdout) line, from
  `offsets` (where this session's output began) on."""
  run = rundir.Run(workdir)
  for name, offset in zip((rundir.STDERR, rundir.STDOUT), offsets):
    try:
      with open(run.path(name), errors="replace") as f:
        f.seek(offset)
        lines = [ln.strip() for ln in re.split(r"[\r\n]", f.read()) if ln.strip()]
    except OSError:
      continue
    ours = [ln for ln in lines if ln.startswith("cnnlab:")]
    if ours or lines:
      return (ours or lines)[-1]
  return ""


def _start(argv, workdir, shared):
  os.makedirs(workdir, exist_ok=True)
  env = repo.child_env()
  if shared:  # JAX takes 75% of a GPU's memory up front: side by side, take what is used
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  stamp = f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n"
  run = rundir.Run(workdir)
  with open(run.path(rundir.STDOUT), "a") as out, open(run.path(rundir.STDERR), "a") as err:
    for f in (out, err):
      f.write(stamp)
      f.flush()  # before the child writes to the same files
    proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
    return proc, (err.tell(), out.tell()), time.time()


def run_points(jobs, parallel=1, log=print):
  """Run jobs [(name, argv, workdir)], `parallel` at a time, each as its own subprocess.

  Returns ({name: (exit_code, last_stderr_line, seconds)}, signum or None). SIGINT/SIGTERM
  are passed on to the running children (which checkpoint and exit 130/143) and no further
  point starts; jobs never started are missing from the outcomes.
  """
  pending, running, outcomes, stop = list(jobs), {}, {}, []
  total = len(jobs)

  def handle(signum, frame):
    stop.append(signum)  # first: the log below may be interrupted by a second signal
    if len(stop) == 1:
      log(f"{signal.Signals(signum).name}: stopping {len(running)} running point(s) (they save "
          "a checkpoint); no new point starts")
    for proc, _, _, _ in list(running.values()):
      proc.send_signal(signum)

  old = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
  try:
    while running or (pending and not stop):
      while pending and not stop and len(running) < parallel:
        name, argv, workdir = pending.pop(0)
        log(f"[{total - len(pending)}/{total}] start {name} (log: {rundir.Run(workdir).path(rundir.STDOUT)})")
        proc, offset, t0 = _start(argv, workdir, shared=parallel > 1)
        running[name] = (proc, offset, t0, workdir)
        if stop:  # a signal came while it was starting
          proc.send_signal(stop[-1])
      for name, (proc, offset, t0, workdir) in list(running.items()):
        if proc.poll() is None:
          continue
        del running[name]
        line = last_line(workdir, offset)
        outcomes[name] = (proc.returncode, line, time.time() - t0)
        word = "done" if proc.returncode == 0 else "stopped" if stop else "FAILED"
        log(f"{word} {name} (exit {proc.returncode}, {time.time() - t0:.0f} s)"
            + (f": {line}" if proc.returncode and line else ""))
      time.sleep(0.1)
  finally:
    for s, handler in old.items():
      signal.signal(s, handler)
    for proc, _, _, _ in running.values():  # only on an unexpected error in this loop
      proc.terminate()
  return outcomes, (stop[0] if stop else None)
