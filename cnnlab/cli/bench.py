"""`bench`: training/eval images per second of a config's model, optionally against PyTorch.

  ./launch.sh bench --against=torch                # needs pip install -e '.[bench]'
  ./launch.sh bench --against=none --batch_sizes=128 --repeats=3
  ./launch.sh bench --seeds_vs_sequential=4        # 4 seeds vmapped vs 4 processes
  ./launch.sh bench --input_modes=resident,stream  # the input modes (bench/input_throughput.py)
  ./launch.sh bench --decode=generated             # decode img/s of a JPEG folder (or PATH)

Rounds alternate cnnlab, PyTorch eager and torch.compile (and a matmul peak) so a noisy,
shared CPU loads them alike; the JSON keeps every round (min/median/max), the machine, library
versions, the git commit and the config's path inside the repository. cnnlab's rounds time the
jitted step that `train` runs. Time to an accuracy is `./launch.sh speedrun`.
"""

from absl import flags
from ml_collections import config_flags

from cnnlab.cli import common
from cnnlab.cli.common import require
from cnnlab.errors import UserError

_CONFIG = config_flags.DEFINE_config_file(
    "config", common.DEFAULT_CONFIG, "experiment config file; override fields with "
    "--config.FIELD=value", lock_config=True)
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["32", "128"], "batch sizes to measure")
_AGAINST = flags.DEFINE_enum("against", "auto", ["auto", "torch", "none"],
                             "baseline to interleave: auto = PyTorch when it is installed "
                             "(else cnnlab alone, with a note), torch (required), none")
_REPEATS = flags.DEFINE_integer("repeats", 5, "interleaved rounds per batch size")
_SEEDS_VS_SEQUENTIAL = flags.DEFINE_integer(
    "seeds_vs_sequential", None, "instead of throughput: wall time of this many seeds of "
    "--config trained as one vmapped program vs one fresh process per seed")
_INPUT_MODES = flags.DEFINE_list(
    "input_modes", None, "instead of throughput: training img/s of --config in each of these "
    "input modes (resident, stream), interleaved rounds at each --batch_sizes")
_DECODE = flags.DEFINE_string(
    "decode", None, "PATH or 'generated': instead of throughput, decode img/s of a folder of "
    "class subfolders of images (generated: JPEGs drawn in a temporary directory) in one "
    "process and in the stream mode's worker processes")
_OUT = flags.DEFINE_string("out", None, "JSON path (default bench/results/<UTC timestamp>.json)")


def main(argv):
  try:
    sizes = [int(b) for b in _BATCH_SIZES.value]
  except ValueError:
    raise UserError(f"--batch_sizes={','.join(_BATCH_SIZES.value)} must be integers, "
                    "e.g. 32,128") from None
  require(all(b > 0 for b in sizes), "--batch_sizes must be positive")
  require(_REPEATS.value >= 1, "--repeats must be at least 1")
  n = _SEEDS_VS_SEQUENTIAL.value
  require(n is None or n >= 2, f"--seeds_vs_sequential={n} must be at least 2, e.g. 8")
  require(_INPUT_MODES.value is None or _DECODE.value is None,
          "--input_modes and --decode are two benches; give one of them")
  from cnnlab.bench import record
  out = record.out_path(_OUT.value)
  if n is not None:
    return _seeds_vs_sequential(out, n)
  if _INPUT_MODES.value is not None or _DECODE.value is not None:
    return _input(out, sizes)
  from cnnlab.bench import throughput
  against = throughput.baseline(_AGAINST.value)
  result = throughput.compare(common.checked_config(_CONFIG), sizes, against, _REPEATS.value)
  common.write_record(out, result, throughput.format_table(result))


def _seeds_vs_sequential(out, n):
  from cnnlab.bench import seeds
  result = seeds.seeds_vs_sequential(common.checked_config(_CONFIG), n,
                                     log=lambda line: print(line, flush=True))
  common.write_record(out, result, seeds.format_line(result))


def _input(out, sizes):
  from cnnlab.bench import input_throughput as bench
  config, log = common.checked_config(_CONFIG), lambda line: print(line, flush=True)
  if _DECODE.value is not None:
    result = bench.decode(_DECODE.value, config, _REPEATS.value, log)
  else:
    result = bench.modes(config, sizes, _REPEATS.value, bench.check_modes(_INPUT_MODES.value),
                         log=log)
  common.write_record(out, result, bench.format_table(result))
