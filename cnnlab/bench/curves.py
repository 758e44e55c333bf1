"""Speedrun curves: test accuracy against seconds from a cold process, one panel per record.

`figure(records)` draws the `speedrun` records (bench/results/speedrun-*.json)
as speedruns are judged: every seed's accuracy after each epoch at the second it was
measured, the target as a dashed line and the time limit as a dotted one, so a target that is
not reached shows by how much and by when. `./launch.sh speedrun --plot=A.json,B.json
--out=docs/figures/speedrun.png` writes it.
"""

import json

import matplotlib.pyplot as plt

from cnnlab.errors import UserError


def load(path):
  """A time-to-accuracy record, or one UserError line naming what is wrong with the file."""
  try:
    with open(path) as f:
      record = json.load(f)
  except (OSError, ValueError) as e:
    raise UserError(f"--plot: cannot read {path} as a JSON record ({e}); pass records "
                    "written by `speedrun`") from None
  if not isinstance(record, dict) or "target" not in record or "cold" not in record:
    raise UserError(f"--plot: {path} is not a `speedrun` record (no target and "
                    "cold runs); pass bench/results/speedrun-*.json files")
  return record


def merge(records):
  """Records of one target (e.g. seed 0 alone, then seeds 1 and 2) as one, seeds in order."""
  merged = {}
  for record in records:
    key = record["target"]
    if key not in merged:
      merged[key] = {**record, "cold": {"runs": []}}
    merged[key]["cold"]["runs"] += record["cold"]["runs"]
  return [merged[k] for k in sorted(merged)]


def figure(records):
  """One panel per target: accuracy by seconds for every seed, target and limit lines."""
  records = merge(records)
  fig, axes = plt.subplots(1, len(records), figsize=(4.2 * len(records), 3.4), squeeze=False)
  for ax, record in zip(axes[0], records):
    target, limit = record["target"], record.get("limit_s")
    for run in sorted(record["cold"]["runs"], key=lambda r: r["seed"]):
      seconds = [h["s"] for h in run["history"]]
      accuracy = [h["test_accuracy"] for h in run["history"]]
      ax.plot(seconds, accuracy, marker="o", markersize=3, label=f"seed {run['seed']}")
    ax.axhline(target, color="black", linestyle="--", linewidth=1, label=f"target {target:g}")
    if limit:
      ax.axvline(limit, color="red", linestyle=":", linewidth=1, label=f"limit {limit:g} s")
    low = min([target] + [h["test_accuracy"] for r in record["cold"]["runs"]
                          for h in r["history"]])
    ax.set_ylim(max(low - 0.01, target - 0.06), target + 0.015)
    last = max([limit or 0] + [h["s"] for r in record["cold"]["runs"] for h in r["history"]])
    ax.set_xlim(0, 1.05 * last)
    ax.set_title(f"{target:g} test accuracy", fontsize=10)
    ax.set_xlabel("seconds from a cold process")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
  axes[0][0].set_ylabel("test accuracy after each epoch")
  fig.tight_layout()
  return fig


def plot(paths, out):
  """Write the figure of the records at `paths` to `out` (format from its extension)."""
  fig = figure([load(p) for p in paths])
  fig.savefig(out, dpi=100, bbox_inches="tight")
  plt.close(fig)
  return out
