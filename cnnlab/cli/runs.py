"""`runs`: compare runs in one table (status, model, differing config fields, accuracy, time).

  ./launch.sh runs                       # every run under runs/ (sweep points included)
  ./launch.sh runs runs/t1 runs/sweep1   # these runs and this sweep's points
  ./launch.sh runs --format=csv > runs.csv

One row per run directory, best validation accuracy first. status: finished (results.json),
running (a `train` holds its lock), interrupted (checkpoints but no results: the same `train`
command resumes it) or failed (config.json but no checkpoint, or a damaged file: see the
error). val acc is the best epoch's; test acc is mean +- std over the run's seeds; wall time
adds up every session of a resumed run. A sweep's results.md is the same table.
"""

import os
import sys

from absl import flags

from cnnlab.errors import UserError
from cnnlab.inspect import runs

DEFAULT = "runs"
_FORMAT = flags.DEFINE_enum("format", "md", ["md", "csv"], "md: a Markdown table, best first; "
                            "csv: every number unrounded, one line per run in directory order")


def main(argv):
  dirs = argv[1:] or [DEFAULT]
  if not argv[1:] and not os.path.isdir(DEFAULT):
    raise UserError(f"no {DEFAULT}/ directory here; train a run first (./launch.sh train) or "
                    "name run directories: ./launch.sh runs DIR ...")
  rows = [runs.run_row(d) for d in runs.find_runs(dirs)]
  keys = runs.differing(rows)
  if _FORMAT.value == "csv":
    runs.write_csv(sys.stdout, rows, keys)
  else:
    print(runs.markdown(rows, keys), end="")


main.takes_args = True  # the directories are words, not flags (common.run)
