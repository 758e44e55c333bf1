"""`bench`: training/eval images per second of a config's model, optionally against PyTorch.

  ./launch.sh bench --against=torch                # needs pip install -e '.[bench]'
  ./launch.sh bench --against=none --batch_sizes=128 --repeats=3
  ./launch.sh bench --time-to-accuracy=0.91        # experiments/speedrun_91.py, seeds 0, 1, 2
  ./launch.sh bench --time-to-accuracy=0.91 --cache=both   # adds each seed's warm-cache rerun
  ./launch.sh bench --seeds_vs_sequential=4        # 4 seeds vmapped vs 4 processes
  ./launch.sh bench --plot=bench/results/speedrun-0.93-2026-12-02-2core.json --out=curve.png

Rounds alternate cnnlab, PyTorch eager and torch.compile (and a matmul peak) so a noisy,
shared CPU loads them alike; the JSON keeps every round (min/median/max), the machine, library
versions, the git commit and the config's path inside the repository.

`--time-to-accuracy=T` instead times one fresh process per seed (config.seed + 0..repeats-1),
each with an empty compilation cache, training until the test accuracy first reaches T. Without
--config it trains T's speedrun config (cnnlab.bench.speedrun.CONFIGS: 0.91, 0.93, 0.94), and
a seed's run stops at the first epoch ending past T's limit (speedrun.LIMITS_S; --time_limit).
"""

import datetime
import os
import re
import sys

from absl import flags
from ml_collections import config_flags

from cnnlab import files
from cnnlab.bench import speedrun
from cnnlab.cli import common
from cnnlab.cli.common import load_config, require
from cnnlab.errors import UserError


def _raw_target(argv):
  """(--time-to-accuracy given, its value or None) from the raw command line (last one wins,
  as in absl). A value that is not a number is left for absl to report."""
  given, value = False, None
  for i, arg in enumerate(argv):
    m = re.match(r"--time[-_]to[-_]accuracy(?:=(.*))?$", arg)
    if m:
      text = m.group(1) if m.group(1) is not None else " ".join(argv[i + 1:i + 2])
      try:
        given, value = True, float(text)
      except ValueError:
        given, value = True, None
  return given, value


# The default config depends on the mode and target, so it is picked from the raw command line
# before absl parses it: absl registers the default config's --config.FIELD flags at definition.
# A target without a speedrun config gets fast.py here only so that the flags exist; main()
# refuses it unless --config is given.
_TIMING_ACCURACY, _RAW_TARGET = _raw_target(sys.argv)
_DEFAULT = (speedrun.config_for(_RAW_TARGET) or os.path.join("experiments", "fast.py")
            if _TIMING_ACCURACY else common.DEFAULT_CONFIG)
_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(common.REPO, _DEFAULT),
    "experiment config file (default experiments/textbook.py; with --time_to_accuracy=T, T's "
    f"speedrun config: {speedrun.targets_text()} have one); override fields with "
    "--config.FIELD=value", lock_config=True)
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["32", "128"], "batch sizes to measure")
_AGAINST = flags.DEFINE_enum("against", "auto", ["auto", "torch", "none"],
                             "baseline to interleave: auto = PyTorch when it is installed "
                             "(else cnnlab alone, with a note), torch (required), none")
_REPEATS = flags.DEFINE_integer("repeats", None, "interleaved rounds per batch size (default "
                                 "5), or seeds with --time_to_accuracy (default 3)")
_TIME_TO_ACCURACY = flags.DEFINE_float(
    "time_to_accuracy", None, "instead of throughput: seconds from a cold process until the "
    "test accuracy first reaches this value, for each of --repeats seeds (default 3)")
_CACHE = flags.DEFINE_enum("cache", "cold", ["cold", "warm", "both"],
                           "with --time_to_accuracy: cold = every seed in a fresh process with "
                           "an empty compilation cache; warm = each seed rerun with the cache "
                           "its cold run filled (a user's second run); both")
_TIME_LIMIT = flags.DEFINE_float(
    "time_limit", None, "with --time_to_accuracy: seconds a seed has to reach the target; its "
    "run stops at the first epoch that ends past them (default: the target's speedrun limit, "
    f"{speedrun.limits_text()}; 0 = none)")
_SEEDS_VS_SEQUENTIAL = flags.DEFINE_integer(
    "seeds_vs_sequential", None, "instead of throughput: wall time of this many seeds of "
    "--config trained as one vmapped program vs one fresh process per seed")
_PLOT = flags.DEFINE_list(
    "plot", None, "instead of measuring: draw these --time_to_accuracy records (JSON files) "
    "as test accuracy against seconds, one panel per target, to --out (a .png, .pdf or .svg)")
_OUT = flags.DEFINE_string("out", None, "JSON path (default bench/results/<UTC timestamp>.json;"
                           " with --plot, the figure's path, default ...<timestamp>.png)")


def main(argv):
  try:
    sizes = [int(b) for b in _BATCH_SIZES.value]
  except ValueError:
    raise UserError(f"--batch_sizes={','.join(_BATCH_SIZES.value)} must be integers, "
                    "e.g. 32,128") from None
  require(all(b > 0 for b in sizes), "--batch_sizes must be positive")
  require(_REPEATS.value is None or _REPEATS.value >= 1, "--repeats must be at least 1")
  stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
  ext = ".png" if _PLOT.value else ".json"
  out = _OUT.value or os.path.join("bench", "results", stamp + ext)
  files.writable_dir(os.path.dirname(out) or ".", "out")
  if _PLOT.value:
    return _plot(_PLOT.value, out)
  require(_TIME_TO_ACCURACY.value is None or _SEEDS_VS_SEQUENTIAL.value is None,
              "--time_to_accuracy and --seeds_vs_sequential are separate measurements; "
              "pass one of them")
  require(_TIME_LIMIT.value is None or _TIME_TO_ACCURACY.value is not None,
          "--time_limit is for --time_to_accuracy runs; drop it or add --time_to_accuracy=0.91")
  require(_CACHE.value == "cold" or _TIME_TO_ACCURACY.value is not None,
          f"--cache={_CACHE.value} is for --time_to_accuracy runs; drop it or add "
          "--time_to_accuracy=0.91")
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
  require(flags.FLAGS["config"].present or speedrun.config_for(target),
          f"--time_to_accuracy={target:g} has no speedrun config (only "
          f"{speedrun.targets_text()} have one); pass --config=FILE, e.g. "
          "--config=experiments/fast.py")
  limit = speedrun.limit_for(target) if _TIME_LIMIT.value is None else _TIME_LIMIT.value
  require(limit is None or limit >= 0, f"--time_limit={_TIME_LIMIT.value} must be seconds "
          ">= 0 (0 = no limit)")
  config = _checked(load_config(_CONFIG))
  result = time_to_accuracy.measure(config, target, _REPEATS.value or 3, _CACHE.value,
                                    log=lambda line: print(line, flush=True),
                                    limit_s=limit or None)
  _write(out, result, time_to_accuracy.format_table(result))


def _plot(paths, out):
  require(os.path.splitext(out)[1].lower() in (".png", ".pdf", ".svg"),
          f"--out={out} must end in .png, .pdf or .svg with --plot, e.g. --out=speedrun.png")
  require(not (_TIME_TO_ACCURACY.value or _SEEDS_VS_SEQUENTIAL.value),
          "--plot draws records already made; drop --time_to_accuracy/--seeds_vs_sequential")
  from cnnlab.bench import curves
  print(f"cnnlab: wrote {curves.plot(paths, out)}", flush=True)


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
  record.write(out, result, config_flags.get_config_filename(flags.FLAGS["config"]), table,
               record.config_overrides(sys.argv[1:]))
