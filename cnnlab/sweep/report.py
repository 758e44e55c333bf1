"""A sweep's results: one row per point (inspect.runs' row of its workdir), then the runs
table as CSV and Markdown, and a plot."""

import signal

from cnnlab import rundir
from cnnlab.fields import format_value
from cnnlab.inspect import runs
from cnnlab.sweep.runner import last_line


def point_row(name, point, workdir, outcome=None):
  """One table row: the swept values, the results of `workdir`, and how the point ended.

  status: the run's (finished, running, interrupted, failed), or pending (never started).
  `outcome` (exit code, last line, seconds) of this session's process, when it ran: failed
  (exit code + its last line) or interrupted (stopped by a signal; resumes on re-run).
  Without one (sweep --report), a point without a config.json is running (its lock is held),
  failed (with the last line of its log) or pending.
  """
  row = runs.run_row(workdir, name)
  row["config"].update(point)
  if row["status"] == "finished":
    return row
  if outcome is not None:
    code, line, _ = outcome
    interrupted = code in (130, 143, -signal.SIGINT, -signal.SIGTERM)
    row.update(status="interrupted" if interrupted else "failed", exit_code=code,
               error=line or row["error"])
  elif row["status"] is None:  # no config.json yet: starting, never started, or failed early
    line = last_line(workdir)
    starting = rundir.Run(workdir).in_use
    row.update(status="running" if starting else "failed" if line else "pending",
               error="" if starting else line)
  return row


def plot(path, keys, rows):
  """results.png: val/test accuracy vs the swept value (1-D, numeric), else per point."""
  from matplotlib.figure import Figure  # no pyplot: no global state, no display needed
  rows = [{**r, **{k: r["config"].get(k) for k in keys}} for r in rows]
  done = [r for r in rows if r["status"] == "finished"]
  numeric = len(keys) == 1 and all(isinstance(r[keys[0]], (int, float)) and
                                   not isinstance(r[keys[0]], bool) for r in done)
  fig = Figure(figsize=(7, 4.5) if numeric else (max(6, 1.5 * len(rows) + 1), 5))
  ax = fig.subplots()
  if numeric and done:
    done.sort(key=lambda r: r[keys[0]])
    xs = [r[keys[0]] for r in done]
    for metric, label in (("val_accuracy", "validation"), ("test_accuracy", "test")):
      ax.plot(xs, [r[metric] for r in done], "o-", label=label)
    if min(xs) > 0 and max(xs) >= 10 * min(xs):
      ax.set_xscale("log")
    ax.set_xlabel(keys[0])
  else:
    xs = list(range(len(rows)))
    for shift, metric, label in ((-0.2, "val_accuracy", "validation"),
                                 (0.2, "test_accuracy", "test")):
      ax.bar([x + shift for x in xs], [r[metric] or 0.0 for r in rows], width=0.4, label=label)
    ax.set_xticks(xs, ["\n".join(f"{k.rsplit('.', 1)[-1]}={format_value(r[k])}" for k in keys)
                       for r in rows], fontsize=8)
    accs = [r[m] for r in done for m in ("val_accuracy", "test_accuracy")]
    if accs:
      ax.set_ylim(max(0.0, min(accs) - 0.05), min(1.0, max(accs) + 0.02))
  ax.set_ylabel("accuracy (best epoch)")
  ax.set_title(f"sweep: {len(done)} of {len(rows)} points finished")
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def write_reports(workdir, keys, rows):
  """results.csv (grid order), results.md and results.png in the sweep's workdir; returns
  the Markdown table."""
  sweep_dir = rundir.SweepDir(workdir)
  table = runs.markdown(rows, keys)
  with open(sweep_dir.report("csv"), "w", newline="") as f:
    runs.write_csv(f, rows, keys)
  with open(sweep_dir.report("md"), "w") as f:
    f.write(table)
  plot(sweep_dir.report("png"), keys, rows)
  return table
