"""`./launch.sh runs`: one table of run directories (finished, interrupted, failed, running),
the config fields that differ, and the HParams record every finished run leaves for
TensorBoard. Built from the session's one smoke training, copied and altered: no training."""

import json
import os
import shutil
import struct

import pytest

from cnnlab import rundir
from cnnlab.inspect import runs
from conftest import run_cli


def _runs_dir(tmp_path, smoke_run):
  """a: the finished smoke run; b: the same, interrupted (no results.json), another learning
  rate; c: failed before its first checkpoint (config.json only), another seed."""
  workdir, _ = smoke_run
  top = tmp_path / "runs"
  shutil.copytree(workdir, top / "a", ignore=shutil.ignore_patterns(".lock", "tensorboard"))
  shutil.copytree(top / "a", top / "b")
  (top / "b" / "results.json").unlink()
  config = json.loads((top / "a" / "config.json").read_text())
  config["optimizer"]["learning_rate"] = 0.003
  (top / "b" / "config.json").write_text(json.dumps(config))
  config["optimizer"]["learning_rate"], config["seed"] = 0.001, 7
  (top / "c").mkdir()
  (top / "c" / "config.json").write_text(json.dumps(config))
  return top


def test_runs_table_of_finished_interrupted_failed(tmp_path, smoke_run):
  top = _runs_dir(tmp_path, smoke_run)
  results = json.loads((top / "a" / "results.json").read_text())
  history = [json.loads(line) for line in open(top / "a" / "metrics.jsonl")]
  timings = [json.loads(line) for line in open(top / "a" / "timings.jsonl")]
  epochs_s = sum(t["epoch_time_s"] for t in timings)
  ips = f"{sum(t['images_per_s'] for t in timings) / len(timings):,.0f}"
  best = min(history, key=lambda r: r["val_loss"])
  result = run_cli("runs", str(top))
  assert result.returncode == 0, result.stderr
  assert result.stdout.splitlines() == [
      "| # | run | model | optimizer.learning_rate | seed | epochs | val acc | test acc | "
      "wall time | images/s | status |",
      "|--:|:--|:--|--:|--:|--:|--:|--:|--:|--:|:--|",
      f"| 1 | {top}/a | textbook_cnn | 0.001 | 0 | 2 | {results['val_accuracy']:.4f} | "
      f"{results['test_accuracy']:.4f} | "
      f"{runs._duration(max(results['train_wall_time_s'], epochs_s))} | {ips} | finished |",
      f"| - | {top}/b | textbook_cnn | 0.003 | 0 | 2 | {best['val_accuracy']:.4f} | - | "
      f"{runs._duration(epochs_s)} | {ips} | interrupted |",
      f"| - | {top}/c | textbook_cnn | 0.001 | 7 | - | - | - | - | - | failed |"]
  assert best["val_accuracy"] == results["val_accuracy"]  # b is a with its results removed

  result = run_cli("runs", str(top / "c"), str(top / "a"), "--format=csv")
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  assert lines[0] == ("run,status,model,seed,epochs,best_epoch,val_accuracy,test_accuracy,"
                      "test_accuracy_std,num_seeds,wall_time_s,images_per_s,exit_code,error")
  assert lines[1] == f"{top}/c,failed,textbook_cnn,7,,,,,,1,,,,"
  assert lines[2].startswith(f"{top}/a,finished,textbook_cnn,0,2,{results['best_epoch']},"
                             f"{results['val_accuracy']},{results['test_accuracy']},,1,")
  assert len(lines) == 3


def test_running_and_damaged_runs(tmp_path, smoke_run):
  top = _runs_dir(tmp_path, smoke_run)
  with rundir.Run(top / "c").lock():  # a `train` holding its workdir
    assert rundir.Run(top / "c").status() == "running"
  assert rundir.Run(top / "c").status() == "failed"
  assert rundir.Run(tmp_path).status() is None  # no config.json: not a run
  (top / "a" / "results.json").write_text("{")
  row = runs.run_row(str(top / "a"))
  assert (row["status"], row["test_accuracy"]) == ("failed", None)
  assert row["error"].startswith(f"{top}/a/results.json is damaged")
  assert runs.find_runs([str(tmp_path)]) == [str(top / "a"), str(top / "b"), str(top / "c")]


@pytest.mark.parametrize("make, words", [
    (lambda d: None, "is not a directory"),
    (lambda d: os.makedirs(d / "x" / "checkpoints-none"), "no runs in"),
])
def test_bad_runs_directory_is_one_line_and_exit_2(tmp_path, make, words):
  make(tmp_path / "w")
  result = run_cli("runs", str(tmp_path / "w"))
  assert result.returncode == 2, result.stderr
  assert result.stderr.startswith("cnnlab: error: ") and result.stderr.count("\n") == 1
  assert words in result.stderr and result.stdout == ""


def _events(directory):
  """Every Event of the TensorBoard files in `directory` (TFRecord: length, crc, data, crc)."""
  from tensorboardX.proto.event_pb2 import Event
  events = []
  for name in sorted(os.listdir(directory)):
    data = open(os.path.join(directory, name), "rb").read()
    pos = 0
    while pos < len(data):
      (length,) = struct.unpack("<Q", data[pos:pos + 8])
      events.append(Event.FromString(data[pos + 12:pos + 12 + length]))
      pos += 12 + length + 4
  return events


def test_a_finished_run_lists_its_config_in_tensorboard_hparams(smoke_run):
  from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData
  workdir, results = smoke_run
  values = [v for e in _events(os.path.join(workdir, rundir.TENSORBOARD)) for v in e.summary.value]
  plugin = [HParamsPluginData.FromString(v.metadata.plugin_data.content) for v in values
            if v.metadata.plugin_data.plugin_name == "hparams"]
  assert [p.WhichOneof("data") for p in plugin] == ["session_start_info", "session_end_info"]
  hparams = plugin[0].session_start_info.hparams
  assert hparams["model.name"].string_value == "textbook_cnn"
  assert hparams["optimizer.learning_rate"].number_value == 0.001
  assert hparams["num_epochs"].number_value == 2 and hparams["seed"].number_value == 0
  assert plugin[1].session_end_info.status == 1  # STATUS_SUCCESS
  scalars = {v.tag: v.simple_value for v in values if v.tag.startswith("results/")}
  assert scalars == {"results/test_accuracy": pytest.approx(results["test_accuracy"], abs=1e-7),
                     "results/val_accuracy": pytest.approx(results["val_accuracy"], abs=1e-7)}


def test_seeds_show_mean_and_std():
  row = {"run": "runs/fast", "status": "finished", "model": "textbook_cnn",
         "config": {"num_seeds": 3}, "epochs": 10, "best_epoch": 9, "val_accuracy": 0.91234,
         "test_accuracy": 0.91316, "test_accuracy_std": 0.00163, "num_seeds": 3,
         "wall_time_s": 3725.0, "images_per_s": 5321.7, "exit_code": None, "error": ""}
  assert runs.markdown([row], []).splitlines()[2] == (
      "| 1 | runs/fast | textbook_cnn | 10 | 0.9123 | 0.9132 +- 0.0016 | 1h 02m | 5,322 | "
      "finished |")
