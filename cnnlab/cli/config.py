r"""`config`: every field of a config, its value and what it means, grouped (nothing is run).

  ./launch.sh config                                    # the default, experiments/textbook.py
  ./launch.sh config --config=experiments/best.py --config.optimizer.learning_rate=0.1

The model block lists all hyperparameters of the config's model, the ones the config leaves
at the model's default too. Set any field of any command with --config.FIELD=value.
"""

import os

from absl import flags
from ml_collections import config_flags

from cnnlab.cli import common

_CONFIG = config_flags.DEFINE_config_file(
    "config", common.DEFAULT_CONFIG,
    "experiment config file to show; --config.FIELD=value overrides are shown applied",
    lock_config=True)


def _shown(value):
  if isinstance(value, str):
    return value or '""'
  return str(tuple(value)) if isinstance(value, list) else str(value)


def model_rows(model_config):
  """(key, value, meaning) of the model block: the config's fields, then the model's defaults."""
  from cnnlab import fields
  from cnnlab.models.registry import model_fields  # imports flax: only here
  defaults = model_fields(model_config.name)
  for key in ("num_classes", "dtype"):  # set from the dataset and from config.dtype
    defaults.pop(key, None)
  rows = [("model.name", model_config.name, fields.meaning("model.name"))]
  for key, value in model_config.items():
    if key != "name":
      text = fields.meaning(f"model.{key}") if key in defaults else (
          f"not a hyperparameter of {model_config.name}: train refuses it")
      rows.append((f"model.{key}", _shown(value), text))
  rows += [(f"model.{key}", f"{_shown(value)} (default)", fields.meaning(f"model.{key}"))
           for key, value in defaults.items() if key not in model_config]
  return rows


def grouped_rows(config):
  """{group: [(key, value, meaning)]} in the order of cnnlab.fields.FIELDS, 'other' last."""
  from cnnlab import fields
  from cnnlab.rundir import flatten
  groups = {group: [] for group in [*fields.FIELDS, "other"]}
  for key, value in flatten(config).items():
    if not key.startswith("model."):
      text = fields.meaning(key) or "(no meaning yet: add one to cnnlab/fields.py)"
      groups[fields.group_of(key)].append((key, _shown(value), text))
  order = {key: i for block in fields.FIELDS.values() for i, key in enumerate(block)}
  groups = {group: sorted(rows, key=lambda row: order.get(row[0], len(order)))
            for group, rows in groups.items()}
  groups["model"] = model_rows(config.model)
  return {group: rows for group, rows in groups.items() if rows}


def render(groups, title):
  rows = [row for block in groups.values() for row in block]
  kw = max(len(key) for key, _, _ in rows) + 2
  vw = min(max(len(value) for _, value, _ in rows), 24) + 2
  lines = [title, "set a field with --config.FIELD=value (any command that takes --config)"]
  for group, block in groups.items():
    lines += ["", group]
    lines += [f"  {key:<{kw}}{value:<{vw}}{text}".rstrip() for key, value, text in block]
  return "\n".join(lines)


def main(argv):
  config = common.load_config(_CONFIG)
  path = config_flags.get_config_filename(flags.FLAGS["config"])
  shown = os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path
  overrides = [f"--{name}={flags.FLAGS[name].serialize().split('=', 1)[-1]}"
               for name in flags.FLAGS if name.startswith("config.") and flags.FLAGS[name].present]
  title = f"config: {shown}" + (f" with {' '.join(overrides)}" if overrides else "")
  print(render(grouped_rows(config), title))
