"""`bench`: training/eval images per second of a config's model, optionally against PyTorch.

Rounds alternate cnnlab and torch (and a matmul peak) so a noisy, shared CPU loads both alike;
the JSON keeps every round (min/median/max) plus machine and library versions.

`--time_to_accuracy=0.91` (or --time-to-accuracy) instead times fresh processes training
--config (default experiments/fast.py) until the test accuracy first reaches 0.91.
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
_REPEATS = flags.DEFINE_integer("repeats", None, "interleaved rounds per batch size (default "
                                 "5), or runs per cache state with --time_to_accuracy (default 3)")
FAST_CONFIG = os.path.join(REPO, "experiments", "fast.py")
_TIME_TO_ACCURACY = flags.DEFINE_float(
    "time_to_accuracy", None, "instead of throughput: seconds from a cold process until the "
    "test accuracy first reaches this value (median of --repeats, default 3)")
_OUT = flags.DEFINE_string("out", None, "JSON path (default bench/results/<UTC timestamp>.json)")


def main(argv):
  try:
    sizes = [int(b) for b in _BATCH_SIZES.value]
  except ValueError:
    raise UserError(f"--batch_sizes={','.join(_BATCH_SIZES.value)} must be integers, "
                    "e.g. 32,128") from None
  cli.require(all(b > 0 for b in sizes), "--batch_sizes must be positive")
  cli.require(_REPEATS.value is None or _REPEATS.value >= 1, "--repeats must be at least 1")
  stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
  out = _OUT.value or os.path.join("bench", "results", f"{stamp}.json")
  cli.writable_dir(os.path.dirname(out) or ".", "out")
  if _TIME_TO_ACCURACY.value is not None:
    return _time_to_accuracy(out)
  if _AGAINST.value == "torch":
    try:
      import torch  # noqa: F401
    except ImportError:
      raise UserError("--against=torch needs PyTorch (pip install torch, CPU build); "
                      "or pass --against=none") from None
  config = cli.load_config(_CONFIG)
  result = bench.compare(config, sizes, _AGAINST.value, _REPEATS.value or 5)
  result["config"] = config_flags.get_config_filename(flags.FLAGS["config"])
  _write(out, result, bench.format_table(result))


def _time_to_accuracy(out):
  from cnnlab import time_to_accuracy
  target = _TIME_TO_ACCURACY.value
  cli.require(0.0 < target < 1.0, f"--time_to_accuracy={target} must be an accuracy in (0, 1), "
              "e.g. 0.91")
  if not flags.FLAGS["config"].present:  # the recipe tuned for this measurement
    flags.FLAGS["config"].parse(FAST_CONFIG)
  config = cli.load_config(_CONFIG)
  result = time_to_accuracy.measure(config, target, _REPEATS.value or 3,
                                    log=lambda line: print(line, flush=True))
  result.update(config=config_flags.get_config_filename(flags.FLAGS["config"]),
                machine=bench.machine_info())
  _write(out, result, time_to_accuracy.format_table(result))


def _write(out, result, table):
  with open(out, "w") as f:
    json.dump(result, f, indent=1)
  print(table)
  print(f"wrote {out}")
