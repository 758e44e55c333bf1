"""The daily research loop from the shell: interrupt, resume with `--workdir` alone, extend a
finished run on purpose, draw an unfinished run, and leave no litter when a command fails.

The runs come from the session's smoke training (copies of it) and one run interrupted in
its first epoch (in-process, a few steps); every command is a subprocess, as a user runs it.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from cnnlab.train import lifecycle
from cnnlab import files, rundir
from cnnlab.errors import UserError
from conftest import DATA_DIR, REPO, needs_data, one_line_error, run_cli, smoke_config

pytestmark = needs_data
SMOKE = f"--config={REPO}/experiments/smoke.py"
STEPS_BEFORE_CTRL_C = 10


def _files(workdir):
  """Every file under `workdir` with its bytes (the lock's pid record aside)."""
  out = {}
  for root, _, names in os.walk(workdir):
    for name in names:
      if name != rundir.LOCK:
        path = os.path.join(root, name)
        out[os.path.relpath(path, workdir)] = open(path, "rb").read()
  return out


@pytest.fixture
def finished(smoke_run, tmp_path):
  workdir = str(tmp_path / "finished")
  shutil.copytree(smoke_run[0], workdir)
  return workdir


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
  """(workdir, log lines) of a smoke run stopped by Ctrl-C (SIGINT) in its first epoch."""
  from cnnlab.train import epochs, train_and_evaluate
  bar = epochs.tqdm

  def ctrl_c_after_some_steps(iterable, **kwargs):
    for i, item in enumerate(bar(iterable, **kwargs)):
      if i == STEPS_BEFORE_CTRL_C - 1:
        os.kill(os.getpid(), signal.SIGINT)
      yield item

  workdir, logged = str(tmp_path_factory.mktemp("interrupted")), []
  epochs.tqdm = ctrl_c_after_some_steps
  try:
    with pytest.raises(SystemExit, match=str(128 + signal.SIGINT)):
      train_and_evaluate(smoke_config(), workdir, log=logged.append)
  finally:
    epochs.tqdm = bar
  return workdir, logged


# --- 1. Resume with the run's own config; extend on purpose, never by accident ----------------

@pytest.mark.slow
def test_ctrl_c_names_the_whole_resume_command(interrupted):
  workdir, logged = interrupted
  assert logged[-1] == (f"cnnlab: SIGINT received: saved step {STEPS_BEFORE_CTRL_C} to "
                        f"{workdir}/checkpoints; resume with: ./launch.sh train "
                        f"--workdir={workdir}")
  assert not os.path.exists(os.path.join(workdir, "results.json"))


def test_a_finished_run_says_how_to_train_it_on_and_changes_nothing(finished, smoke_run):
  before = _files(finished)
  proc = run_cli("train", f"--workdir={finished}")  # no --config: the run's own is used
  assert proc.returncode == 0, proc.stderr[-3000:]
  acc = smoke_run[1]["test_accuracy"]
  assert proc.stdout == (
      f"{finished} holds a finished run (test accuracy {acc:.4f}, 2 epochs); nothing to do. "
      f"To train it on: ./launch.sh train --workdir={finished} --config.num_epochs=N (N > 2); "
      "to train again: a new --workdir.\n")
  assert _files(finished) == before


@pytest.mark.slow  # the quick tier has test_bad_input's "train: resume another model"
def test_another_config_on_resume_is_one_line_naming_every_differing_field(finished):
  before = _files(finished)
  proc = run_cli("train", f"--config={REPO}/experiments/textbook.py", f"--workdir={finished}")
  line = one_line_error(proc)
  assert line == (
      f"cnnlab: error: workdir {finished!r} holds a run with a different model.conv_groups "
      "(1, now 16), train_size (2048, now 0), eval_batch_size (256, now 1000), num_epochs "
      "(2, now 20), test_size (1000, now 0), validation_size (512, now 0); resume it with "
      f"./launch.sh train --workdir={finished} (it uses its own config.json), or use a new "
      "--workdir")
  assert _files(finished) == before


def test_only_fields_set_on_purpose_may_change_and_never_the_identity():
  saved = json.loads(smoke_config().to_json_best_effort())
  longer = smoke_config(num_epochs=5, data_dir="/elsewhere")
  assert lifecycle.check_resume(saved, longer, "w", on_purpose=("num_epochs",)) == {
      "num_epochs": (2, 5)}  # data_dir is where the data is, not part of the run
  with pytest.raises(UserError, match=r"different num_epochs \(2, now 5\); .* or pass "
                                      r"--workdir=w --config.num_epochs=... to change it on "
                                      r"purpose, or use a new --workdir$"):
    lifecycle.check_resume(saved, longer, "w")  # a file that merely differs: an accident
  with pytest.raises(UserError, match=r"different batch_size \(32, now 64\); resume it"):
    lifecycle.check_resume(saved, smoke_config(batch_size=64), "w", on_purpose=("batch_size",))


def test_an_early_stopped_run_needs_a_larger_patience_to_train_on(finished):
  """More epochs alone would stop again at once: refused, nothing written, the fix named."""
  from cnnlab.train import train_and_evaluate
  run = rundir.Run(finished)
  history = run.history()
  history[1]["val_loss"] = history[0]["val_loss"] + 1  # epoch 1 stays the best
  with open(os.path.join(finished, rundir.METRICS), "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in history)
  saved = run.read_config_json()
  saved["early_stopping_patience"] = 1
  files.write_json(run.config_path, saved)
  before = _files(finished)
  config = smoke_config(early_stopping_patience=1, num_epochs=4)
  with pytest.raises(UserError, match=r"no better validation loss for 1 epochs, so early "
                                      r"stopping would end it at once; to train on, also pass "
                                      r"--config.early_stopping_patience=K \(K > 1, 0 = off\)"):
    train_and_evaluate(config, finished, on_purpose=("num_epochs",))
  assert _files(finished) == before
  logged = []
  train_and_evaluate(smoke_config(early_stopping_patience=1), finished, log=logged.append)
  assert logged[0].endswith(f"To train it on: ./launch.sh train --workdir={finished} "
                            "--config.early_stopping_patience=0 (or more than 1); to train "
                            "again: a new --workdir.")


def test_extending_a_run_with_a_schedule_says_the_schedule_changes(finished, monkeypatch):
  """The decision only (training is stubbed): results set aside, config.json updated, said."""
  from cnnlab.train import loop
  run = rundir.Run(finished)
  saved = run.read_config_json()
  saved["optimizer"]["schedule"] = "cosine"
  files.write_json(run.config_path, saved)
  monkeypatch.setattr(loop, "_train", lambda config, run, resume, stop: "trained on")
  logged, config = [], smoke_config(num_epochs=4)
  config.optimizer.schedule = "cosine"
  assert loop.train_and_evaluate(config, finished, log=logged.append,
                                 on_purpose=("num_epochs",)) == "trained on"
  assert logged[1:] == [
      f"changed on purpose: num_epochs 2 -> 4 (now the run's config: {run.config_path})",
      "note: the cosine learning-rate schedule spans num_epochs: from here on it follows the "
      "4-epoch schedule, so the result differs from a run trained for 4 epochs from the start"]
  assert run.read_config_json()["num_epochs"] == 4 and not run.finished
  assert os.path.exists(os.path.join(finished, rundir.PREVIOUS_RESULTS.format(2)))


@pytest.mark.slow
def test_extending_a_finished_run_on_purpose_trains_only_the_new_epochs(finished, smoke_run):
  old_metrics = open(os.path.join(finished, rundir.METRICS)).read()
  proc = run_cli("train", f"--workdir={finished}", "--config.num_epochs=3")
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.splitlines()
  kept = os.path.join(finished, rundir.PREVIOUS_RESULTS.format(2))
  assert lines[:3] == [
      f"extending {finished} from 2 to 3 epochs (its previous results are kept in {kept})",
      f"changed on purpose: num_epochs 2 -> 3 (now the run's config: {finished}/config.json)",
      f"resuming {finished} from step 128 (epoch 3, batch 0)"]
  assert json.load(open(kept)) == smoke_run[1]
  assert rundir.Run(finished).read_config_json()["num_epochs"] == 3
  metrics = open(os.path.join(finished, rundir.METRICS)).read()
  assert metrics.startswith(old_metrics) and len(metrics.splitlines()) == 3
  assert rundir.Run(finished).read_results()["epochs"] == 3


@pytest.mark.slow
def test_the_default_workdir_is_never_changed_without_being_named(smoke_run, tmp_path):
  """`train --config=smoke.py --config.num_epochs=3` meant a new run, not runs/smoke's."""
  shutil.copytree(smoke_run[0], tmp_path / "runs" / "smoke")
  before = _files(tmp_path / "runs")
  proc = subprocess.run([sys.executable, "-m", "cnnlab.cli", "train", SMOKE,
                         "--config.num_epochs=3"], cwd=tmp_path, capture_output=True,
                        text=True, env=dict(os.environ, PYTHONPATH=REPO), timeout=300)
  one_line_error(proc, "'runs/smoke' holds a run with a different num_epochs (2, now 3)",
                  "or pass --workdir=runs/smoke --config.num_epochs=... to change it on purpose")
  assert _files(tmp_path / "runs") == before


# --- 5. viz on an unfinished run ----------------------------------------------------------

@pytest.mark.slow
def test_viz_of_an_interrupted_run_draws_its_latest_step_and_says_how_to_resume(
    interrupted, tmp_path):
  workdir, _ = interrupted
  out = tmp_path / "figures"
  proc = run_cli("viz", f"--workdir={workdir}", f"--out={out}", "--mistakes=4")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert sorted(os.listdir(out)) == ["confusion.png", "conv1_hist.png", "conv1_kernels.png",
                                     "feature_maps_conv1.png", "feature_maps_conv2.png",
                                     "mistakes.png", "model.png"]  # no empty curves.png
  err = proc.stderr.splitlines()
  assert err[0] == (f"{workdir} is an unfinished run (0 of 2 epochs finished; drawing its "
                    f"step {STEPS_BEFORE_CTRL_C}); resume it with: ./launch.sh train "
                    f"--workdir={workdir}")
  assert err[1].startswith(f"conv1 kernel (3, 3, 1, 32) trained (latest good step "
                           f"{STEPS_BEFORE_CTRL_C}, in epoch 1): mean ")
  assert "no epoch has finished yet, so there are no training curves (curves.png)" in err


# --- 6. A command that fails before saving anything leaves no directory ----------------------
# (--config.batch_size=0, a missing --data_dir and an unknown model: test_bad_input.py's quick
# cases "train: batch 0", "train: missing data dir", "train: unknown model" check the same.)

@pytest.mark.slow
def test_ctrl_c_before_the_first_save_leaves_no_directory(tmp_path):
  workdir = tmp_path / "run"
  proc = subprocess.Popen([sys.executable, "-m", "cnnlab.cli", "train", SMOKE,
                           f"--data_dir={DATA_DIR}", f"--workdir={workdir}"], cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 120
  while not (workdir / rundir.LOCK).exists():  # created and locked: now loading the data
    assert proc.poll() is None and time.time() < deadline, proc.communicate()
    time.sleep(0.001)
  proc.send_signal(signal.SIGINT)
  out, err = proc.communicate(timeout=120)
  assert (proc.returncode, err, out) == (130, "cnnlab: interrupted\n", "")
  assert not workdir.exists()
