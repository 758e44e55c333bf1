"""`bench`: training/eval images per second of a config's model, optionally against PyTorch.

Rounds alternate cnnlab and torch (and a matmul peak) so a noisy, shared CPU loads both alike;
the JSON keeps every round (min/median/max) plus machine and library versions.
"""

import datetime
import json
import os

from absl import flags
from ml_collections import config_flags

from cnnlab import bench, cli
from cnnlab.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(REPO, "experiments", "textbook.py"),
    "experiment config file; override fields with --config.FIELD=value", lock_config=True)
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["32", "128"], "batch sizes to measure")
_AGAINST = flags.DEFINE_enum("against", "torch", ["torch", "none"], "baseline to interleave")
_REPEATS = flags.DEFINE_integer("repeats", 5, "interleaved rounds per batch size (>= 3)")
_OUT = flags.DEFINE_string("out", None, "JSON path (default bench/results/<UTC timestamp>.json)")


def main(argv):
  try:
    sizes = [int(b) for b in _BATCH_SIZES.value]
  except ValueError:
    raise UserError(f"--batch_sizes={','.join(_BATCH_SIZES.value)} must be integers, "
                    "e.g. 32,128") from None
  cli.require(all(b > 0 for b in sizes), "--batch_sizes must be positive")
  cli.require(_REPEATS.value >= 1, "--repeats must be at least 1")
  if _AGAINST.value == "torch":
    try:
      import torch  # noqa: F401
    except ImportError:
      raise UserError("--against=torch needs PyTorch (pip install torch, CPU build); "
                      "or pass --against=none") from None
  config = cli.load_config(_CONFIG)
  stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
  out = _OUT.value or os.path.join("bench", "results", f"{stamp}.json")
  cli.writable_dir(os.path.dirname(out) or ".", "out")
  result = bench.compare(config, sizes, _AGAINST.value, _REPEATS.value)
  result["config"] = config_flags.get_config_filename(flags.FLAGS["config"])
  with open(out, "w") as f:
    json.dump(result, f, indent=1)
  print(bench.format_table(result))
  print(f"wrote {out}")
