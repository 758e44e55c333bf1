"""Finding one's way from the shell: `-h`/`--help`, did-you-mean, `config`, TensorBoard, setup."""

import ast
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, run_cli

CLI = os.path.join(REPO, "cnnlab", "cli")
COMMANDS = sorted(f[:-3] for f in os.listdir(CLI)
                  if f.endswith(".py") and not f.startswith("_") and f != "common.py")
HEAVY = ("jax", "flax", "tensorflow", "matplotlib", "optax", "orbax", "numpy", "torch")
DATA_DIR = "/usr/share/datasets/fashion-mnist"  # launch.sh's own, used by `setup`


def _one_error_line(proc):
  assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
  return lines[0]


# --- item 7: help -------------------------------------------------------------------------

@pytest.mark.parametrize("command", COMMANDS)
def test_help_exits_0_with_the_docstring_and_flags_and_imports_nothing_heavy(command):
  """`--help` prints the command's docstring and its own flags, exit 0; and it loads no JAX,
  Flax, TensorFlow, matplotlib or numpy (what made it take 1.5-2 s): the speed as a property."""
  env = dict(os.environ, PYTHONPATH=REPO)
  proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "cnnlab.cli", command,
                         "--help"], cwd=REPO, env=env, capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr[-2000:]
  source = open(os.path.join(CLI, f"{command}.py")).read()
  doc = ast.get_docstring(ast.parse(source))
  assert proc.stdout.startswith(doc.strip() + "\n\nflags:\n"), proc.stdout[:500]
  own = re.findall(r"DEFINE_\w+\(\s*\"(\w+)\"", source)
  assert own and all(re.search(rf"^  --(\[no\])?{name}:", proc.stdout, re.M) for name in own)
  imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines()
              if line.startswith("import time:")}
  assert not {m for m in imported if m.split(".")[0] in HEAVY}
  assert "python -m" not in proc.stdout
  for line in proc.stdout.splitlines():  # examples are whole lines: a broken `\` join leaves
    assert not re.search(r"\S {3,}--", line), line  # a run of spaces inside one


def test_dash_h_is_help_too():
  short, long = run_cli("train", "-h"), run_cli("train", "--help")
  assert short.returncode == long.returncode == 0, short.stderr
  assert short.stdout == long.stdout
  assert short.stdout.startswith("`train`: train a config in a workdir")
  assert "  --config.FIELD=value: set any field of the config; `./launch.sh config` lists them" \
         " all\n" in short.stdout


def test_misspelled_flag_gets_did_you_mean():
  line = _one_error_line(run_cli("train", "--workdr=runs/x"))
  assert line == ("cnnlab: error: unknown flag --workdr (did you mean '--workdir'?); "
                  "`./launch.sh train --help` lists this command's flags")


# --- item 2: config fields ----------------------------------------------------------------

def test_every_config_field_and_model_hyperparameter_has_a_meaning():
  """A new config field (in any experiments/ config) or model hyperparameter without a line
  in cnnlab/fields.py fails here."""
  import importlib
  from cnnlab import fields
  from cnnlab.models.registry import MODELS, model_fields
  from cnnlab.rundir import flatten
  names = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, "experiments"))
                 if f.endswith(".py") and f != "__init__.py")
  keys = {k for n in names for k in flatten(importlib.import_module(f"experiments.{n}")
                                            .get_config())}
  keys |= {f"model.{h}" for m in MODELS for h in model_fields(m) if h != "num_classes"}
  assert len(names) >= 9 and "optimizer.nesterov" in keys and "model.blocks_per_stage" in keys
  assert sorted(k for k in keys if not fields.meaning(k)) == []
  assert fields.meaning("optimizer.nesterow") == "" and fields.group_of("nope") == "other"


def _rows(out):
  """{field: (value, meaning)} and the group headers, from `config`'s output."""
  rows, groups = {}, []
  for line in out.splitlines()[2:]:
    if line and not line.startswith(" "):
      groups.append(line)
    elif line:
      key, value, text = re.match(r"  (\S+)\s+(\S+(?: \(default\))?)\s+(.*)", line).groups()
      rows[key] = (value, text)
  return rows, groups


def test_config_command_lists_fields_values_and_meanings_grouped():
  proc = run_cli("config", "--config=experiments/best.py",
                 "--config.optimizer.learning_rate=0.1")
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.splitlines()[0] == ("config: experiments/best.py with "
                                         "--config.optimizer.learning_rate=0.1")
  rows, groups = _rows(proc.stdout)
  assert groups == ["data", "model", "optimizer", "training", "augmentation", "scale"]
  assert [k for k in rows if k.startswith("model.")] == [
      "model.name", "model.dropout", "model.width", "model.bn_momentum"]
  assert rows["model.name"][0] == "vgg_small" and rows["model.width"][0] == "16"
  assert rows["model.bn_momentum"] == ("0.9 (default)", "BatchNorm running-average momentum "
                                       "(0.9 = PyTorch's 0.1)")
  assert rows["optimizer.learning_rate"][0] == "0.1" and rows["optimizer.nesterov"][0] == "True"
  assert rows["data_dir"][0] == '""' and rows["batch_size"][0] == "64"
  assert rows["dtype"][0] == "float32"
  assert len(rows) == 42 and all(text for _, text in rows.values())


def test_unknown_field_names_it_and_points_to_config():
  default = _one_error_line(run_cli("train", "--config.optimzer.learning_rate=1"))
  assert default == ("cnnlab: error: the config has no field optimzer (did you mean "
                     "optimizer?); `./launch.sh config` lists every field")
  nested = _one_error_line(run_cli("train", "--config=experiments/smoke.py",
                                   "--config.optimizer.learnin_rate=1"))
  assert nested == ("cnnlab: error: the config has no field optimizer.learnin_rate (did you "
                    "mean optimizer.learning_rate?); `./launch.sh config "
                    "--config=experiments/smoke.py` lists every field")


def test_a_field_under_a_value_names_the_value_and_the_fix():
  """`--config.input.mode=stream` (config.input is a string): ml_collections says only "string
  indices must be integers", and without --config it raised while the command was imported."""
  for given in ([], ["--config=experiments/smoke.py"]):
    proc = run_cli("train", *given, "--config.input.mode=stream", "--workdir=unused")
    assert not os.path.exists(os.path.join(REPO, "unused"))
    assert _one_error_line(proc) == (
        "cnnlab: error: config.input is a value ('auto'), not a group of fields, so "
        "--config.input.mode names nothing; set --config.input=VALUE")
  deeper = _one_error_line(run_cli("config", "--config.optimizer.learning_rate.x=1"))
  assert deeper == ("cnnlab: error: config.optimizer.learning_rate is a value (0.001), not a "
                    "group of fields, so --config.optimizer.learning_rate.x names nothing; set "
                    "--config.optimizer.learning_rate=VALUE")


# --- item 4: TensorBoard ------------------------------------------------------------------

def test_tensorboard_reads_a_runs_scalars_offline(smoke_run):
  """TensorBoard (a dependency now) reads the run's event files: the same numbers as
  metrics.jsonl, and its own `--inspect` lists them, with no network."""
  from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
  workdir, _ = smoke_run
  records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  events = EventAccumulator(os.path.join(workdir, "tensorboard"))
  events.Reload()
  for tag, field in (("train/loss", "train_loss"), ("val/loss", "val_loss"),
                     ("val/accuracy", "val_accuracy")):
    assert [(e.step, e.value) for e in events.Scalars(tag)] == [
        (r["epoch"], float(np.float32(r[field]))) for r in records]
  tensorboard = os.path.join(os.path.dirname(sys.executable), "tensorboard")
  proc = subprocess.run([tensorboard, "--inspect", f"--logdir={workdir}"], capture_output=True,
                        text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "   val/loss\n" in proc.stdout and "   last_step            2\n" in proc.stdout


# --- item 8: setup, and launch.sh's tensorboard word (fake venvs: nothing is installed) -----

def _fake_venv(tmp_path, python_script, stamp=False):
  venv = tmp_path / "venv"
  (venv / "bin").mkdir(parents=True)
  for name, body in (("python", python_script), ("tensorboard", 'echo "tensorboard $*"')):
    (venv / "bin" / name).write_text(f"#!/bin/sh\n{body}\n")
    (venv / "bin" / name).chmod(0o755)
  if stamp:
    (venv / ".cnnlab-installed").touch()
  return venv


def _launch(venv, *args):
  return subprocess.run([os.path.join(REPO, "launch.sh"), *args], capture_output=True,
                        text=True, env=dict(os.environ, CNNLAB_VENV=str(venv)), timeout=60)


NOISY_PIP = 'i=0; while [ $i -lt 60 ]; do echo "Collecting package-$i"; i=$((i+1)); done'


def test_setup_shows_pips_error_and_exits_2_when_pip_fails(tmp_path):
  venv = _fake_venv(tmp_path, NOISY_PIP + '\ncase "$*" in *" -e "*) echo "ERROR: No matching '
                    'distribution found for jax>=0.4.30" >&2; exit 1;; esac')
  proc = _launch(venv, "setup")
  log = venv / "pip-install.log"
  assert proc.returncode == 2 and proc.stdout == ""
  assert proc.stderr.splitlines() == [
      f"setup: installing cnnlab and its dependencies into {venv} (pip install -e .[dev]); "
      f"pip's output: {log}",
      "ERROR: No matching distribution found for jax>=0.4.30",
      f"launch.sh: error: pip install failed (pip's error is above; its whole output is in "
      f"{log})"]
  assert log.read_text().count("Collecting package-") == 120  # pip upgrade + install
  assert not (venv / ".cnnlab-installed").exists()  # the next command tries again


@pytest.mark.skipif(not os.path.isdir(DATA_DIR), reason=f"setup would install {DATA_DIR}")
def test_setup_prints_its_own_lines_not_pips(tmp_path):
  venv = _fake_venv(tmp_path, NOISY_PIP)
  proc = _launch(venv, "setup")
  assert proc.returncode == 0 and proc.stdout == "", proc.stderr
  first, last = proc.stderr.splitlines()
  assert first.startswith(f"setup: installing cnnlab and its dependencies into {venv} ")
  assert re.fullmatch(r"setup: done in \d+ s", last)
  assert (venv / ".cnnlab-installed").exists()


def test_launch_sh_tensorboard_defaults_to_the_runs_directory(tmp_path):
  venv = _fake_venv(tmp_path, "exit 1", stamp=True)  # installed: no setup runs
  assert _launch(venv, "tensorboard").stdout == "tensorboard --logdir=runs\n"
  assert _launch(venv, "tensorboard", "--logdir=runs/t1", "--port=6007").stdout == (
      "tensorboard --logdir=runs/t1 --port=6007\n")
