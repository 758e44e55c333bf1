"""`bench`: training/eval images per second of a config's model, optionally against PyTorch.

  ./launch.sh bench --against=torch                # needs pip install -e '.[bench]'
  ./launch.sh bench --against=none --batch_sizes=128 --repeats=3
  ./launch.sh bench --time_to_accuracy=0.91        # seconds until test accuracy 0.91
  ./launch.sh bench --seeds_vs_sequential=4        # 4 seeds vmapped vs 4 processes

Rounds alternate cnnlab and torch (and a matmul peak) so a noisy, shared CPU loads both alike;
the JSON keeps every round (min/median/max) plus machine and library versions.

`--time_to_accuracy=0.91` (or --time-to-accuracy) instead times fresh processes training
--config (default experiments/fast.py) until the test accuracy first reaches 0.91.
"""

import datetime
import os
import re
import sys

from absl import flags
from ml_collections import config_flags

from cnnlab import files
from cnnlab.cli import common
from cnnlab.cli.common import load_config, require
from cnnlab.errors import UserError

FAST_CONFIG = os.path.join(common.REPO, "experiments", "fast.py")
# The default config depends on the mode, so it is picked from the raw command line before
# absl parses it: absl registers the default config's --config.FIELD flags at definition.
_TIMING_ACCURACY = any(re.match(r"--time[-_]to[-_]accuracy(=|$)", a) for a in sys.argv)
_CONFIG = config_flags.DEFINE_config_file(
    "config", FAST_CONFIG if _TIMING_ACCURACY else common.DEFAULT_CONFIG,
    "experiment config file (default experiments/textbook.py, or experiments/fast.py with "
    "--time_to_accuracy); override fields with --config.FIELD=value", lock_config=True)
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["32", "128"], "batch sizes to measure")
_AGAINST = flags.DEFINE_enum("against", "auto", ["auto", "torch", "none"],
                             "baseline to interleave: auto = PyTorch when it is installed "
                             "(else cnnlab alone, with a note), torch (required), none")
_REPEATS = flags.DEFINE_integer("repeats", None, "interleaved rounds per batch size (default "
                                 "5), or runs per cache state with --time_to_accuracy (default 3)")
_TIME_TO_ACCURACY = flags.DEFINE_float(
    "time_to_accuracy", None, "instead of throughput: seconds from a cold process until the "
    "test accuracy first reaches this value (median of --repeats, default 3)")
_SEEDS_VS_SEQUENTIAL = flags.DEFINE_integer(
    "seeds_vs_sequential", None, "instead of throughput: wall time of this many seeds of "
    "--config trained as one vmapped program vs one fresh process per seed")
_OUT = flags.DEFINE_string("out", None, "JSON path (default bench/results/<UTC timestamp>.json)")


def main(argv):
  try:
    sizes = [int(b) for b in _BATCH_SIZES.value]
  except ValueError:
    raise UserError(f"--batch_sizes={','.join(_BATCH_SIZES.value)} must be integers, "
                    "e.g. 32,128") from None
  require(all(b > 0 for b in sizes), "--batch_sizes must be positive")
  require(_REPEATS.value is None or _REPEATS.value >= 1, "--repeats must be at least 1")
  stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
  out = _OUT.value or os.path.join("bench", "results", f"{stamp}.json")
  files.writable_dir(os.path.dirname(out) or ".", "out")
  require(_TIME_TO_ACCURACY.value is None or _SEEDS_VS_SEQUENTIAL.value is None,
              "--time_to_accuracy and --seeds_vs_sequential are separate measurements; "
              "pass one of them")
  if _TIME_TO_ACCURACY.value is not None:
    return _time_to_accuracy(out)
  if _SEEDS_VS_SEQUENTIAL.value is not None:
    return _seeds_vs_sequential(out)
  against = _baseline(_AGAINST.value)
  config = _checked(load_config(_CONFIG))
  from cnnlab.bench import throughput
  result = throughput.compare(config, sizes, against, _REPEATS.value or 5)
  _write(out, result, throughput.format_table(result))


def _baseline(against):
  """--against resolved to torch or none: auto takes PyTorch when it imports, else notes it."""
  if against == "none":
    return "none"
  try:
    import torch  # noqa: F401
    return "torch"
  except ImportError:
    if against == "torch":
      raise UserError("--against=torch needs PyTorch (pip install -e '.[bench]', or torch's "
                      "CPU build); or pass --against=none") from None
  print("cnnlab: note: PyTorch is not installed, so cnnlab is measured alone "
        "(pip install -e '.[bench]' adds the comparison)", file=sys.stderr, flush=True)
  return "none"


def _time_to_accuracy(out):
  from cnnlab.bench import time_to_accuracy
  target = _TIME_TO_ACCURACY.value
  require(0.0 < target < 1.0, f"--time_to_accuracy={target} must be an accuracy in (0, 1), "
              "e.g. 0.91")
  config = _checked(load_config(_CONFIG))
  result = time_to_accuracy.measure(config, target, _REPEATS.value or 3,
                                    log=lambda line: print(line, flush=True))
  _write(out, result, time_to_accuracy.format_table(result))


def _seeds_vs_sequential(out):
  n = _SEEDS_VS_SEQUENTIAL.value
  require(n >= 2, f"--seeds_vs_sequential={n} must be at least 2, e.g. 8")
  config = _checked(load_config(_CONFIG))
  from cnnlab.bench import seeds
  result = seeds.seeds_vs_sequential(config, n, log=lambda line: print(line, flush=True))
  _write(out, result, f"{n} seeds: one vmapped program {result['vmapped_s']:.1f} s, "
         f"{n} sequential runs {result['sequential_s']:.1f} s: {result['speedup']:.2f}x")


def _checked(config):
  """Config mistakes as one line here, before any child process starts (none compiles)."""
  from cnnlab import config as config_lib
  config_lib.check(config)
  return config


def _write(out, result, table):
  from cnnlab.bench import record
  record.write(out, result, config_flags.get_config_filename(flags.FLAGS["config"]), table)
