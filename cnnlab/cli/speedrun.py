"""`speedrun`: seconds from a cold process until every seed reaches a config's test accuracy.

  ./launch.sh speedrun --config=experiments/speedrun_91.py              # seeds 0, 1, 2
  ./launch.sh speedrun --config=experiments/speedrun_93.py --cache=both # adds warm-cache reruns
  ./launch.sh speedrun --config=experiments/fast.py --target=0.91 --time_limit=20
  ./launch.sh speedrun --plot=bench/results/speedrun-0.93-2026-12-02-2core.json --out=curve.png

One fresh process per seed (config.seed + 0..repeats-1), each with an empty compilation cache,
trains until the test accuracy first reaches the config's speedrun.target; a seed's run stops
at the first epoch ending past speedrun.time_limit_s. The JSON record (bench/results/) keeps
every seed's accuracy after each epoch, the machine, library versions and the git commit.
--plot draws such records instead: accuracy against seconds, one panel per target.
"""

from absl import flags
from ml_collections import config_flags

from cnnlab.cli import common
from cnnlab.cli.common import require

_CONFIG = config_flags.DEFINE_config_file(
    "config", common.SPEEDRUN_CONFIG, "a speedrun config (experiments/speedrun_91.py, _93, "
    "_94: speedrun.target and speedrun.time_limit_s); override fields with --config.FIELD=value",
    lock_config=True)
_REPEATS = flags.DEFINE_integer("repeats", 3, "seeds, each in a fresh process")
_CACHE = flags.DEFINE_enum("cache", "cold", ["cold", "warm", "both"],
                           "cold = every seed in a fresh process with an empty compilation "
                           "cache; warm = each seed rerun with the cache its cold run filled "
                           "(a user's second run); both")
_TARGET = flags.DEFINE_float("target", None, "test accuracy to reach (default: the config's "
                             "speedrun.target)")
_TIME_LIMIT = flags.DEFINE_float("time_limit", None, "seconds a seed has to reach the target "
                                 "(default: the config's speedrun.time_limit_s; 0 = none)")
_PLOT = flags.DEFINE_list("plot", None, "instead of measuring: draw these records (JSON files) "
                          "as test accuracy against seconds, one panel per target, to --out")
_OUT = flags.DEFINE_string(
    "out", None, "the record's path (default bench/results/<UTC timestamp>.json); with --plot "
    "the figure's (.png, .pdf or .svg)")


def main(argv):
  from cnnlab.bench import record
  if _PLOT.value:
    return _plot(record.out_path(_OUT.value, ".png"))
  require(_REPEATS.value >= 1, "--repeats must be at least 1")
  out = record.out_path(_OUT.value)
  config = common.checked_config(_CONFIG)
  from cnnlab.bench import speedrun, time_to_accuracy
  target, limit = speedrun.settings(config, _TARGET.value, _TIME_LIMIT.value)
  result = time_to_accuracy.measure(config, target, _REPEATS.value, _CACHE.value,
                                    log=lambda line: print(line, flush=True), limit_s=limit)
  common.write_record(out, result, time_to_accuracy.format_table(result))


def _plot(out):
  require(out.lower().endswith((".png", ".pdf", ".svg")),
          f"--out={out} must end in .png, .pdf or .svg with --plot, e.g. --out=speedrun.png")
  common.setup_figures()
  from cnnlab.bench import curves
  print(f"cnnlab: wrote {curves.plot(_PLOT.value, out)}", flush=True)
