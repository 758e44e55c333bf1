"""A sweep's grid: --sweep flags -> typed values -> points -> their names and `train` flags.

Neither JAX nor the models are imported, so bad flags are reported before JAX is loaded.
"""

import itertools
import re

from cnnlab.errors import UserError, closest
from cnnlab.fields import format_value
from cnnlab.rundir import flatten


EXAMPLE = "--sweep=config.optimizer.learning_rate=1e-3,3e-4"


def parse_value(text, current, key):
  """`text` read as the type of the field's current value (bool, int, float or str)."""
  kind = type(current).__name__
  if isinstance(current, bool):
    if text.lower() in ("true", "1", "yes"):
      return True
    if text.lower() in ("false", "0", "no"):
      return False
    expected = "true or false"
  elif isinstance(current, (int, float)):
    try:
      return type(current)(text)
    except ValueError:
      expected = "an integer" if isinstance(current, int) else "a number"
  elif isinstance(current, str):
    return text
  else:
    raise UserError(f"config.{key} holds a {kind} ({current!r}); --sweep can vary only bool, "
                    "int, float and str fields")
  raise UserError(f"--sweep value {text!r} for config.{key} is not {expected} (the field is "
                  f"a {kind}, now {current!r})")


def parse_sweep(expr, flat):
  """'config.a.b=1,2' -> ('a.b', [1, 2]) with values typed like the field; else UserError."""
  if "=" not in expr:
    raise UserError(f"--sweep={expr} has no '='; write KEY=VALUES, e.g. {EXAMPLE}")
  key, _, values = expr.partition("=")
  key = key.strip()
  if not key.startswith("config."):
    raise UserError(f"--sweep key {key!r} must start with 'config.', e.g. {EXAMPLE}")
  key = key[len("config."):]
  if key not in flat:
    fields = [k for k in flat if k.startswith(key + ".")]
    if fields:
      raise UserError(f"config.{key} is a group of fields; sweep one of them, e.g. "
                      f"--sweep=config.{fields[0]}=...")
    raise UserError(f"the config has no field config.{key}{_suggest(key, flat)}")
  items = [v.strip() for v in values.split(",")]
  if not any(items) or not all(items):
    raise UserError(f"--sweep={expr} has an empty value; list values separated by commas, "
                    f"e.g. {EXAMPLE}")
  parsed = [parse_value(v, flat[key], key) for v in items]
  if len(set(parsed)) < len(parsed):
    raise UserError(f"--sweep={expr} lists a value twice; each value is one point")
  return key, parsed


def _suggest(key, flat):
  """' (did you mean X?)': same leaf elsewhere, an abbreviation (lr), else difflib's pick."""
  group, _, leaf = key.rpartition(".")
  initials = lambda name: "".join(w[:1] for w in name.split("_"))
  for match in (lambda k, g, lf: lf == leaf,
                lambda k, g, lf: g == group and (initials(lf) == leaf or lf.startswith(leaf))):
    hits = [k for k in flat if match(k, *k.rpartition(".")[::2])]
    if len(hits) == 1:
      return f" (did you mean 'config.{hits[0]}'?)"
  return closest("config." + key, ["config." + k for k in flat])


def parse_grid(exprs, config):
  """The --sweep flags -> [(key, values), ...]; UserError on an empty or malformed grid."""
  if not exprs:
    raise UserError(f"no --sweep given, so the grid is empty; add one or more, e.g. {EXAMPLE}")
  flat = flatten(config)
  axes = [parse_sweep(expr, flat) for expr in exprs]
  keys = [key for key, _ in axes]
  for key in keys:
    if keys.count(key) > 1:
      raise UserError(f"config.{key} is swept by two --sweep flags; list all its values in one")
  return axes


def expand_grid(axes):
  """Cartesian product of [(key, values), ...] -> [{key: value}, ...], the last key fastest."""
  keys = [key for key, _ in axes]
  return [dict(zip(keys, combo)) for combo in itertools.product(*(v for _, v in axes))]


def point_name(point):
  """'optimizer.learning_rate=0.001,model.dropout=0.3': readable, and a valid directory name."""
  name = ",".join(f"{k}={format_value(v)}" for k, v in point.items())
  return re.sub(r"[^A-Za-z0-9._=,+-]", "_", name)


def point_names(points):
  """A directory name per point; numbered ones (point000, ...) when readable ones won't do."""
  names = [point_name(p) for p in points]
  if len(set(names)) < len(names) or max(map(len, names)) > 200:
    names = [f"point{i:03d}" for i in range(len(points))]
  return names


def override_flags(point):
  """The `train` flags that set a point's values: ['--config.model.dropout=0.3', ...]."""
  return [f"--config.{k}={format_value(v)}" for k, v in point.items()]


def train_args(config_file, given, point, workdir, data_dir=None):
  """One point's `train` flags: the local runner, the SLURM script and --print_commands all
  run exactly these (after `python -m cnnlab.cli train` or `./launch.sh train`)."""
  args = [f"--config={config_file}", *given, *override_flags(point), f"--workdir={workdir}"]
  return args + ([f"--data_dir={data_dir}"] if data_dir else [])


def apply_point(config, point):
  """A copy of `config` with the point's values set (for checking them before any run)."""
  config = config.copy_and_resolve_references()
  config.update_from_flattened_dict(point)
  return config
