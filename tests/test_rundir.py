"""The run directory (cnnlab.rundir) in-process, without training: the file names a run keeps
(older runs and users' scripts read them), best epoch, flattening, the lock, status and the
clean-up of a directory a failed command created. Fast: only tmp_path files."""

import json
import os

import ml_collections
import pytest

from cnnlab import rundir
from cnnlab.errors import UserError


def test_a_run_keeps_the_files_its_docstring_names(tmp_path):
  run = rundir.Run(tmp_path / "r")
  with run.created():
    run.write_config(ml_collections.ConfigDict({"seed": 3, "optimizer": {"name": "adam"}}))
    run.write_results({"test_accuracy": 0.75})
  os.makedirs(tmp_path / "r" / "checkpoints" / "16")
  assert sorted(os.listdir(run.dir)) == ["checkpoints", "config.json", "results.json"]
  assert run.checkpoints_dir == str(tmp_path / "r" / "checkpoints")
  assert run.unusable_dir == str(tmp_path / "r" / "checkpoints-unusable")
  assert run.config_path == str(tmp_path / "r" / "config.json")
  assert (rundir.METRICS, rundir.TIMINGS, rundir.TENSORBOARD, rundir.FIGURES, rundir.LOCK,
          rundir.EXPORT, rundir.STDOUT, rundir.STDERR) == (
              "metrics.jsonl", "timings.jsonl", "tensorboard", "figures", ".lock", "export",
              "stdout.log", "stderr.log")
  assert run.read_config().to_dict() == {"seed": 3, "optimizer": {"name": "adam"}}
  assert run.read_config_json() == {"seed": 3, "optimizer": {"name": "adam"}}
  assert run.read_results() == {"test_accuracy": 0.75}
  aside = run.set_results_aside(4)
  assert aside == str(tmp_path / "r" / "results-epoch4.json") and not run.finished
  assert json.load(open(aside)) == {"test_accuracy": 0.75}
  assert run.describe() == (
      f"checkpoints: {run.dir}/checkpoints  metrics: {run.dir}/metrics.jsonl  "
      f"tensorboard: {run.dir}/tensorboard  results: {run.dir}/results.json")


def test_history_and_timings_read_metrics_jsonl_line_by_line(tmp_path):
  run = rundir.Run(tmp_path)
  assert run.history() == [] and run.timings() == []
  lines = [{"epoch": 1, "val_loss": 0.5}, {"epoch": 2, "val_loss": 0.4}]
  (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(l) + "\n" for l in lines))
  (tmp_path / "timings.jsonl").write_text(json.dumps({"epoch": 1, "epoch_time_s": 2.5}) + "\n")
  assert run.history() == lines
  assert run.timings() == [{"epoch": 1, "epoch_time_s": 2.5}]


def test_best_is_the_lowest_validation_loss_not_the_last_or_the_highest():
  history = [{"epoch": 1, "val_loss": 0.6}, {"epoch": 2, "val_loss": 0.3},
             {"epoch": 3, "val_loss": 0.45}]
  assert rundir.BEST_METRIC == "val_loss"
  assert rundir.best(history) is history[1]
  assert rundir.best([history[0]]) is history[0]
  assert rundir.best([]) is None


def test_flatten_names_nested_leaves_with_dots():
  config = ml_collections.ConfigDict({"a": 1, "opt": {"lr": 0.1, "sched": {"warm": 2}}})
  assert rundir.flatten(config) == {"a": 1, "opt.lr": 0.1, "opt.sched.warm": 2}
  assert rundir.flatten({"x": {"y": [1, 2]}}, "p.") == {"p.x.y": [1, 2]}
  assert rundir.config_json(ml_collections.ConfigDict({"t": (1, 2)})) == {"t": [1, 2]}


def test_the_lock_names_its_owner_and_a_second_holder_is_refused(tmp_path):
  run = rundir.Run(tmp_path)
  assert not run.in_use
  with run.lock():
    assert open(tmp_path / ".lock").read() == f"{os.getpid()}\n"
    assert run.in_use
    with pytest.raises(UserError) as err:  # flock is per open file: the same process is refused
      with rundir.locked(str(tmp_path)):
        pass
    assert str(err.value) == (f"workdir {str(tmp_path)!r} is in use by pid {os.getpid()}; "
                              "wait for that run to finish or choose another --workdir")
  assert not run.in_use
  with rundir.locked(str(tmp_path)):  # released: free again
    pass
  assert isinstance(rundir.Run(tmp_path, primary=False).lock(), type(
      rundir.contextlib.nullcontext()))


def test_status_of_finished_running_interrupted_failed_and_not_a_run(tmp_path):
  run = rundir.Run(tmp_path)
  assert run.status() is None and not run.has_checkpoints
  (tmp_path / "config.json").write_text("{}")
  assert run.status() == "failed"
  os.makedirs(tmp_path / "checkpoints" / "32.orbax-checkpoint-tmp")  # unfinished: no number
  assert not run.has_checkpoints and run.status() == "failed"
  os.makedirs(tmp_path / "checkpoints" / "32")
  assert run.has_checkpoints and run.status() == "interrupted"
  with run.lock():
    assert run.status() == "running"
  (tmp_path / "results.json").write_text("{}")
  assert run.status() == "finished"


def test_read_config_says_what_is_missing(tmp_path):
  with pytest.raises(UserError) as err:
    rundir.Run(tmp_path / "nope").read_config()
  assert str(err.value) == (f"workdir {str(tmp_path / 'nope')!r} does not exist; pass the "
                            "--workdir of a training run")
  with pytest.raises(UserError) as err:
    rundir.Run(tmp_path).read_config()
  assert str(err.value) == (f"{str(tmp_path)!r} has no config.json, so it is not a cnnlab run "
                            "(or it was damaged); pass the --workdir of a training run")


def test_a_failed_command_removes_the_directory_it_created_and_nothing_else(tmp_path):
  run = rundir.Run(tmp_path / "new")
  with pytest.raises(RuntimeError):
    with run.created():
      assert os.path.isdir(run.dir)
      raise RuntimeError("failed before the first checkpoint")
  assert not os.path.exists(run.dir)
  os.makedirs(tmp_path / "old")
  with pytest.raises(RuntimeError):
    with rundir.Run(tmp_path / "old").created():
      raise RuntimeError
  assert os.path.isdir(tmp_path / "old")  # it existed before: never removed
  kept = rundir.Run(tmp_path / "kept")
  with pytest.raises(RuntimeError):
    with kept.created():
      os.makedirs(tmp_path / "kept" / "checkpoints" / "16")
      raise RuntimeError
  assert kept.has_checkpoints  # a saved checkpoint is kept for the resume


def test_a_secondary_process_reads_but_never_writes(tmp_path):
  run = rundir.Run(tmp_path / "r", primary=False)
  with run.created():
    run.write_config(ml_collections.ConfigDict({"seed": 1}))
    run.write_results({"a": 1})
  assert not os.path.exists(run.dir)


def test_figures_dir_is_created_only_when_asked(tmp_path):
  run = rundir.Run(tmp_path)
  assert run.figures_dir(create=False) == str(tmp_path / "figures")
  assert not os.path.exists(tmp_path / "figures")
  assert run.figures_dir() == str(tmp_path / "figures") and os.path.isdir(tmp_path / "figures")
  assert run.figures_dir(str(tmp_path / "out")) == str(tmp_path / "out")
  (tmp_path / "file").write_text("")
  bad = str(tmp_path / "file" / "figs")
  with pytest.raises(UserError) as err:
    run.figures_dir(bad)
  assert str(err.value) == f"cannot create out {bad!r} (Not a directory); choose another with --out"
  with pytest.raises(UserError) as err:
    run.figures_dir(bad, create=False)
  assert str(err.value) == (f"cannot create out {bad!r} ({str(tmp_path / 'file')!r} is a file); "
                            "choose another with --out")


def test_a_sweep_directory_keeps_its_record_points_and_reports(tmp_path):
  sweep = rundir.SweepDir(tmp_path)
  assert sweep.read_record() is None and sweep.read_points() == {}
  sweep.write_record({"axes": 1})
  sweep.write_points({"p0": {"seed": 0}})
  assert sorted(os.listdir(tmp_path)) == ["points.json", "sweep.json"]
  assert sweep.read_record() == {"axes": 1} and sweep.read_points() == {"p0": {"seed": 0}}
  assert sweep.report("md") == str(tmp_path / "results.md")
  assert sweep.point("p0").dir == str(tmp_path / "p0")
  assert (sweep.SLURM, sweep.SLURM_LOG) == ("sweep.slurm", "slurm-%A_%a.out")
