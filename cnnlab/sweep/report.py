"""A sweep's results: one row per point (read from its workdir), then CSV, Markdown and a plot."""

import csv
import signal

from cnnlab import rundir
from cnnlab.sweep.grid import format_value

METRICS = ("val_accuracy", "test_accuracy", "best_epoch", "epochs", "wall_time_s",
           "images_per_s")


def point_row(name, point, workdir, outcome=None):
  """One table row: the swept values, the results of `workdir`, and how the point ended.

  status: ok (results.json present), failed (exit code + last stderr line), interrupted
  (stopped by a signal; resumes on re-run) or pending (never started).
  """
  row = {"point": name, **point, **{m: None for m in METRICS},
         "status": "pending", "exit_code": None, "error": ""}
  run = rundir.Run(workdir)
  timings = run.timings()
  if timings:
    row["images_per_s"] = sum(t["images_per_s"] for t in timings) / len(timings)
  if run.finished:
    results = run.read_results()
    # train_wall_time_s restarts on resume; the epochs' times add up across sessions.
    wall = max(results.get("train_wall_time_s") or 0.0, sum(t["epoch_time_s"] for t in timings))
    row.update({k: results.get(k) for k in ("val_accuracy", "test_accuracy", "best_epoch",
                                            "epochs")}, wall_time_s=wall, status="ok")
    return row
  if outcome is not None:
    code, line, _ = outcome
    interrupted = code in (130, 143, -signal.SIGINT, -signal.SIGTERM)
    row.update(status="interrupted" if interrupted else "failed", exit_code=code, error=line)
  return row


def ranked(rows):
  """Finished rows best first by val accuracy (then test accuracy), the others after them."""
  ok = [r for r in rows if r["status"] == "ok"]
  ok.sort(key=lambda r: (-(r["val_accuracy"] or 0.0), -(r["test_accuracy"] or 0.0)))
  return ok + [r for r in rows if r["status"] != "ok"]


def write_csv(path, keys, rows):
  """results.csv: one row per point, in grid order."""
  fields = ["point", *keys, "status", *METRICS, "exit_code", "error"]
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)


def _duration(seconds):
  if seconds is None or seconds < 60:
    return "-" if seconds is None else f"{seconds:.1f} s"
  minutes, sec = divmod(round(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {sec:02d}s"


def _num(value, spec):
  return "-" if value is None else format(value, spec)


def markdown_table(keys, rows):
  """The Markdown results table, best val accuracy first; failures show their exit code."""
  head = ["#", *keys, "val acc", "test acc", "epochs", "wall time", "images/s", "status"]
  lines = ["| " + " | ".join(head) + " |",
           "|" + "|".join(["--:"] * (len(head) - 1) + [":--"]) + "|"]
  for i, row in enumerate(ranked(rows), 1):
    status = row["status"]
    if row["exit_code"] is not None:
      status += f" (exit {row['exit_code']})"
      status += f": {row['error']}" if row["error"] and status.startswith("failed") else ""
    cells = [str(i) if row["status"] == "ok" else "-",
             *(format_value(row[k]) for k in keys),
             _num(row["val_accuracy"], ".4f"), _num(row["test_accuracy"], ".4f"),
             _num(row["epochs"], "d"), _duration(row["wall_time_s"]),
             _num(row["images_per_s"], ",.0f"), status]
    lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
  return "\n".join(lines) + "\n"


def plot(path, keys, rows):
  """results.png: val/test accuracy vs the swept value (1-D, numeric), else per point."""
  from matplotlib.figure import Figure  # no pyplot: no global state, no display needed
  done = [r for r in rows if r["status"] == "ok"]
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
  """results.csv, results.md and results.png in the sweep's workdir; returns the table."""
  sweep_dir = rundir.SweepDir(workdir)
  table = markdown_table(keys, rows)
  write_csv(sweep_dir.report("csv"), keys, rows)
  with open(sweep_dir.report("md"), "w") as f:
    f.write(table)
  plot(sweep_dir.report("png"), keys, rows)
  return table

