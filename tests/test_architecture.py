"""The house rules of docs/architecture.md, checked from the source (no JAX, milliseconds)."""

import ast
import os
import re

import pytest

from conftest import REPO

CNNLAB = os.path.join(REPO, "cnnlab")
# Each module's layer: a module may import only from its own layer or below (lazily too).
LAYERS = [
    ["errors", "fields", "files", "supervisor"],
    ["data", "input", "augment", "ops", "pooling", "parallel", "rundir", "checkpoint", "compilation"],
    ["shapes"],
    ["models"],
    ["train.state"],
    ["config", "train.step"],
    ["train.evaluate"],
    ["train.epochs", "train.epoch_log"],
    ["train.loop", "train"],
    ["inspect", "sweep", "bench"],
    ["cli"],
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}


def _modules():
  for root, _, files in os.walk(CNNLAB):
    for f in sorted(files):
      if f.endswith(".py"):
        path = os.path.join(root, f)
        name = os.path.relpath(path, CNNLAB)[:-3].replace(os.sep, ".")
        yield name.removesuffix(".__init__").removesuffix("__init__"), path


def _rank(module):
  """The layer of a dotted name below cnnlab (its longest listed prefix)."""
  parts = module.split(".")
  for n in range(len(parts), 0, -1):
    if ".".join(parts[:n]) in RANK:
      return RANK[".".join(parts[:n])]
  raise AssertionError(f"cnnlab.{module} has no layer in LAYERS: add it")


def _imports(path):
  """Every cnnlab module imported by the file, at the top or inside functions."""
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      names = [f"{node.module}.{a.name}" for a in node.names]  # the longest name decides
    else:
      continue
    for name in names:
      if name.startswith("cnnlab."):
        yield name[len("cnnlab."):]


def test_no_module_imports_from_a_layer_above_it():
  upward = []
  for module, path in _modules():
    if not module:
      continue
    for imported in _imports(path):
      if _rank(imported) > _rank(module):
        upward.append(f"cnnlab.{module} imports cnnlab.{imported}")
  assert not upward, upward


def test_the_control_fails_when_a_rule_is_broken(tmp_path):
  """The check above can fail: an ops.py that imports the models package is caught."""
  bad = tmp_path / "ops.py"
  bad.write_text("from cnnlab.models import create_model\n")
  assert [_rank(i) for i in _imports(str(bad))] == [RANK["models"]] and RANK["models"] > RANK["ops"]


RUN_FILES = ("config.json", "results.json", "metrics.jsonl", "timings.jsonl", "checkpoints",
             "stdout.log", "stderr.log", "sweep.json", "points.json", "tensorboard", "figures")


def test_only_rundir_spells_a_run_directory_file_name():
  spelled = []
  for module, path in _modules():
    if module == "rundir":
      continue
    code = open(path).read()
    for name in RUN_FILES:
      if re.search(rf"[\"']{re.escape(name)}[\"']", code):
        spelled.append(f"cnnlab/{module}: {name}")
  assert not spelled, spelled


def test_a_command_is_one_file_found_by_its_name():
  from cnnlab.cli.__main__ import commands
  files = {f[:-3] for f in os.listdir(os.path.join(CNNLAB, "cli"))
           if f.endswith(".py") and not f.startswith("_") and f != "common.py"}
  table = commands()
  assert set(table) == files == {"bench", "config", "conv", "edges", "predict", "runs",
                                 "summary", "sweep", "train", "viz"}
  assert all(text and not text.startswith("`") for text in table.values()), table


@pytest.mark.parametrize("command", ["train", "viz"])
def test_launch_sh_forwards_any_command_word(command):
  launch = open(os.path.join(REPO, "launch.sh")).read()
  assert f"{command})" not in launch  # no per-command case: the dispatcher finds the file
  assert '"$PY" -m cnnlab.cli "$cmd"' in launch


def test_experiments_holds_configs_only():
  for f in sorted(os.listdir(os.path.join(REPO, "experiments"))):
    if f.endswith(".py") and f != "__init__.py":
      tree = ast.parse(open(os.path.join(REPO, "experiments", f)).read())
      functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
      assert functions == ["get_config"], (f, functions)
