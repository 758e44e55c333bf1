"""Compare runs: one row per run directory and the one table that `./launch.sh runs` prints
and a sweep's report writes (Markdown, CSV).

A row holds the run's status (rundir.Run.status: finished, running, interrupted, failed),
model, flattened config.json, epochs, best val accuracy, test accuracy (mean and std over
seeds), wall time and images/s. The table shows only the config fields that differ.
"""

import csv
import json
import os

from cnnlab import rundir
from cnnlab.errors import UserError
from cnnlab.fields import format_value

NUMBERS = ("epochs", "best_epoch", "val_accuracy", "test_accuracy", "test_accuracy_std",
           "num_seeds", "wall_time_s", "images_per_s")


def find_runs(dirs):
  """The run directories among and under `dirs` (runs, sweeps, folders of them), in order."""
  found = []
  for top in dirs:
    if not os.path.isdir(top):
      raise UserError(f"{top!r} is not a directory; pass run directories or folders holding "
                      "them (default: runs/)")
    before = len(found)
    for root, subdirs, _ in os.walk(top):
      subdirs.sort()
      if rundir.Run(root).status() is not None:
        subdirs.clear()  # a run's own folders hold no runs
        if os.path.realpath(root) not in map(os.path.realpath, found):
          found.append(root)
    if len(found) == before:
      raise UserError(f"no runs in {top!r} (no directory there has a config.json); pass a "
                      "--workdir of `train` or `sweep`, or a folder holding them")
  return found


def run_row(workdir, name=None):
  """One table row read from `workdir`; status None (no run there) is left to the caller."""
  run = rundir.Run(workdir)
  row = {"run": name or workdir, "status": run.status(), "model": None, "config": {},
         **{k: None for k in NUMBERS}, "exit_code": None, "error": ""}
  try:
    _read_into(row, run)
  except (UserError, ValueError, KeyError) as err:  # a damaged file: say which, go on
    row.update(status="failed", error=" ".join(str(err).split())[:200])
  return row


def _read_into(row, run):
  if run.has_config:
    row["config"] = rundir.flatten(run.read_config_json())
    row["model"] = row["config"].get("model.name")
    row["num_seeds"] = row["config"].get("num_seeds")
  timings, history = run.timings(), run.history()
  if timings:
    row["images_per_s"] = sum(t["images_per_s"] for t in timings) / len(timings)
    row["wall_time_s"] = sum(t["epoch_time_s"] for t in timings)
  if run.finished:
    results = run.read_results()
    # train_wall_time_s restarts on resume; the epochs' times add up across sessions.
    row["wall_time_s"] = max(results.get("train_wall_time_s") or 0.0, row["wall_time_s"] or 0.0)
    row.update({k: results.get(k) for k in ("val_accuracy", "test_accuracy", "best_epoch",
                                            "epochs", "test_accuracy_std")})
    row["num_seeds"] = len(results.get("seeds", [])) or row["num_seeds"]
  elif history:
    best = rundir.best(history)
    row.update(epochs=len(history), best_epoch=best["epoch"], val_accuracy=best["val_accuracy"])


def differing(rows):
  """The config fields whose values differ between the rows (first-seen order)."""
  configs = [r["config"] for r in rows if r["config"]]
  keys = list(dict.fromkeys(k for c in configs for k in c))
  return [k for k in keys if k != "model.name" and
          len({json.dumps(c.get(k), sort_keys=True) for c in configs}) > 1]


def ranked(rows):
  """Finished rows best first by val accuracy (then test accuracy), the others after them."""
  done = [r for r in rows if r["status"] == "finished"]
  done.sort(key=lambda r: (-(r["val_accuracy"] or 0.0), -(r["test_accuracy"] or 0.0)))
  return done + [r for r in rows if r["status"] != "finished"]


def write_csv(f, rows, keys):
  """One line per row in the given order; numbers unrounded, as read."""
  fields = ["run", "status", "model", *keys, *NUMBERS, "exit_code", "error"]
  writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
  writer.writeheader()
  writer.writerows({**{k: r["config"].get(k) for k in keys}, **r} for r in rows)


def _duration(seconds):
  if seconds is None or seconds < 60:
    return "-" if seconds is None else f"{seconds:.1f} s"
  minutes, sec = divmod(round(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {sec:02d}s"


def _num(value, spec):
  return "-" if value is None else format(value, spec)


def _test(row):
  spread = row["test_accuracy_std"] is not None and (row["num_seeds"] or 1) > 1
  return _num(row["test_accuracy"], ".4f") + (
      f" +- {row['test_accuracy_std']:.4f}" if spread else "")


def _status(row):
  text = row["status"] or "pending"
  if row["exit_code"] is not None:
    text += f" (exit {row['exit_code']})"
  return text + (f": {row['error']}" if row["error"] and text.startswith("failed") else "")


def markdown(rows, keys):
  """The Markdown table, best val accuracy first; a failure shows its exit code and error."""
  head = ["#", "run", "model", *keys, "epochs", "val acc", "test acc", "wall time",
          "images/s", "status"]
  lines = ["| " + " | ".join(head) + " |",
           "|" + "|".join(["--:", ":--", ":--"] + ["--:"] * (len(head) - 4) + [":--"]) + "|"]
  for i, row in enumerate(ranked(rows), 1):
    cells = [str(i) if row["status"] == "finished" else "-", row["run"], row["model"] or "-",
             *("-" if row["config"].get(k) is None else format_value(row["config"][k])
               for k in keys),
             _num(row["epochs"], "d"), _num(row["val_accuracy"], ".4f"), _test(row),
             _duration(row["wall_time_s"]), _num(row["images_per_s"], ",.0f"), _status(row)]
    lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
  return "\n".join(lines) + "\n"
