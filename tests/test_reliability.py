"""Reliability: killed, corrupted, fed garbage or a full disk, a run keeps its results and says
in one line what is wrong. Every training here is tiny (512 images, 16 steps an epoch).
The SIGKILL test is in test_reliability_kill.py; lock, GPU-determinism and flag tests in
test_reliability_cli.py."""

import errno
import json
import os
import re
import shutil
import signal

import jax.numpy as jnp
import pytest
from orbax.checkpoint._src.handlers import json_checkpoint_handler as jh

from cnnlab import checkpoint
from cnnlab.inspect import restore
from cnnlab.train import state as state_lib
from cnnlab import errors, files, rundir
from cnnlab.train import step as step_lib
from cnnlab.errors import UserError
from cnnlab.train import train_and_evaluate
from conftest import DATA_DIR, REPO, TINY, needs_data, one_line_error, run_cli, tiny

pytestmark = needs_data
TINY_FLAGS = [f"--config={REPO}/experiments/smoke.py", f"--data_dir={DATA_DIR}"] + [
    f"--config.{k}={v}" for k, v in TINY.items()]
TMP = ".orbax-checkpoint-tmp"
quiet = lambda *a: None


def _mngr(workdir):
  return checkpoint.manager(rundir.Run(workdir).checkpoints_dir, read_only=True)


def _steps(workdir):
  return sorted(_mngr(workdir).all_steps())


def _meta(workdir, step):
  return _mngr(workdir).restore(step, args=checkpoint.ocp.args.Composite(
      meta=checkpoint.ocp.args.JsonRestore()))["meta"]


def _read(workdir, name="metrics.jsonl"):
  return open(os.path.join(workdir, name)).read()


def _assert_same_run(workdir, reference, step=48):
  """Bit-identical: the same metrics file, final digest and test numbers."""
  assert _read(workdir) == _read(reference)
  assert _meta(workdir, step)["digest"] == _meta(reference, step)["digest"]
  drop = lambda r: {k: v for k, v in r.items() if k != "train_wall_time_s"}
  load = lambda d: drop(json.loads(_read(d, "results.json")))
  assert load(workdir) == load(reference)


@pytest.fixture
def unfinished(ref, tmp_path):
  """A copy of `ref` as if killed before its last step: results.json gone."""
  workdir = str(tmp_path / "run")
  shutil.copytree(ref, workdir)
  os.remove(os.path.join(workdir, "results.json"))
  return workdir


@pytest.mark.slow
def test_leftover_tmp_directories_are_never_read_as_good(unfinished):
  ckpt = os.path.join(unfinished, "checkpoints")
  shutil.copytree(os.path.join(ckpt, "48"), os.path.join(ckpt, "64" + TMP))  # looks complete
  assert _steps(unfinished) == [32, 48]
  _, _, state, _ = restore.load_run(unfinished, which="latest")
  assert int(state.step) == 48


@pytest.mark.slow
def test_same_seed_same_bits_and_the_last_save_lands_despite_a_slow_disk(
    ref, tmp_path, monkeypatch):
  """Saves run in the background; a slowed writer still finishes before train returns.
  Also: two runs of one config and seed give identical metrics.jsonl and weights (CPU)."""
  import asyncio
  write = jh.JsonCheckpointHandler._save_fn

  async def slow(self, x, directory):
    await asyncio.sleep(0.5)
    return await write(self, x, directory)

  monkeypatch.setattr(jh.JsonCheckpointHandler, "_save_fn", slow)
  workdir = str(tmp_path / "run")
  train_and_evaluate(tiny(), workdir, log=quiet)
  assert 48 in _steps(workdir) and os.path.isdir(os.path.join(workdir, "checkpoints", "48"))
  _assert_same_run(workdir, ref)


def test_sigterm_between_an_epochs_last_step_and_its_evaluation(ref, tmp_path, monkeypatch):
  """The signal lands after the epoch's last step: that epoch is still evaluated and saved."""
  from cnnlab.train import epochs
  bar = epochs.tqdm

  def signal_after_epoch_1(iterable, **kwargs):
    yield from bar(iterable, **kwargs)
    if kwargs["desc"] == "epoch 1":
      os.kill(os.getpid(), signal.SIGTERM)

  monkeypatch.setattr(epochs, "tqdm", signal_after_epoch_1)
  workdir = str(tmp_path / "run")
  with pytest.raises(SystemExit, match=str(128 + signal.SIGTERM)):
    train_and_evaluate(tiny(), workdir, log=quiet)
  monkeypatch.undo()
  train_and_evaluate(tiny(), workdir, log=quiet)
  _assert_same_run(workdir, ref)


# --- Corruption ----------------------------------------------------------------------------

def _largest_file(directory):
  files = [os.path.join(d, f) for d, _, fs in os.walk(directory) for f in fs]
  return max(files, key=os.path.getsize)


def _flip(path):
  with open(path, "r+b") as f:
    f.seek(os.path.getsize(path) // 2)
    chunk = f.read(8)
    f.seek(-len(chunk), 1)
    f.write(bytes(b ^ 0xFF for b in chunk))


def _truncate(path):
  os.truncate(path, os.path.getsize(path) // 2)


def _rewrite_meta(step_dir, change):
  path = os.path.join(step_dir, "meta", "metadata")
  meta = json.load(open(path))
  open(path, "w").write(change(meta))


DAMAGE = {
    "flipped bytes": lambda step_dir: _flip(_largest_file(os.path.join(step_dir, "state"))),
    "garbled metadata JSON": lambda step_dir: _rewrite_meta(step_dir, lambda m: '{"step": 4'),
    "another digest": lambda step_dir: _rewrite_meta(
        step_dir, lambda m: json.dumps(dict(m, digest="0" * 64))),
    "truncated file": lambda step_dir: _truncate(_largest_file(os.path.join(step_dir, "state"))),
    "empty step directory": lambda step_dir: [shutil.rmtree(os.path.join(step_dir, d))
                                              if os.path.isdir(os.path.join(step_dir, d))
                                              else os.remove(os.path.join(step_dir, d))
                                              for d in os.listdir(step_dir)],
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.slow
def test_damaged_latest_checkpoint_falls_back_to_the_previous_one(
    damage, ref, unfinished, capsys):
  DAMAGE[damage](os.path.join(unfinished, "checkpoints", "48"))
  log = []
  train_and_evaluate(tiny(), unfinished, log=log.append)
  warnings = [l for l in capsys.readouterr().err.splitlines() if "cnnlab: warning" in l]
  assert "checkpoint step 48" in warnings[0] and "unusable" in warnings[0], warnings
  assert "moved unusable checkpoint step 48" in warnings[1], warnings
  assert any("resuming" in l and "from step 32" in l for l in log), log
  assert os.listdir(os.path.join(unfinished, rundir.UNUSABLE)) == ["48"]  # kept for a person
  _assert_same_run(unfinished, ref)  # epoch 3 retrained to the same bits


def test_readers_fall_back_from_a_damaged_best_step_without_moving_it(unfinished, capsys):
  """viz/predict read through restore.load_run: read-only, so the damaged step stays put."""
  DAMAGE["flipped bytes"](os.path.join(unfinished, "checkpoints", "48"))
  _, _, state, _ = restore.load_run(unfinished)  # 48 is the best (lowest val loss) and damaged
  assert int(state.step) == 32 and _steps(unfinished) == [32, 48]
  assert "best checkpoint step 48 is unusable" in capsys.readouterr().err


@pytest.mark.slow
def test_damaged_checkpoint_from_the_shell_is_one_warning_line_not_tracebacks(ref, unfinished):
  DAMAGE["truncated file"](os.path.join(unfinished, "checkpoints", "48"))
  proc = run_cli("train", *TINY_FLAGS, "--config.num_epochs=3", f"--workdir={unfinished}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert len(lines) == 2 and "step 48" in lines[0] and "moved" in lines[1], proc.stderr[-3000:]
  _assert_same_run(unfinished, ref)


@pytest.mark.slow
def test_every_step_damaged_is_one_line_exit_2_and_nothing_is_deleted(unfinished):
  for step in (32, 48):
    DAMAGE["flipped bytes"](os.path.join(unfinished, "checkpoints", str(step)))
  before = sorted(os.listdir(os.path.join(unfinished, "checkpoints")))
  proc = run_cli("train", *TINY_FLAGS, "--config.num_epochs=3", f"--workdir={unfinished}")
  lines = [l for l in proc.stderr.splitlines() if l.strip() and "warning" not in l]
  assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
  assert lines[0].startswith("cnnlab: error: no usable checkpoint") and "move it away" in lines[0]
  assert sorted(os.listdir(os.path.join(unfinished, "checkpoints"))) == before  # kept
  assert not os.path.exists(os.path.join(unfinished, rundir.UNUSABLE))  # nothing moved
  assert not os.path.exists(os.path.join(unfinished, "results.json"))


@pytest.mark.parametrize("change,needle", [
    ("missing", "no config.json"), ("other model", "different model"),
    ("garbled", "config.json is damaged")])
def test_resume_refuses_a_missing_or_foreign_config(change, needle, unfinished):
  path = os.path.join(unfinished, "config.json")
  if change == "missing":
    os.remove(path)
  elif change == "other model":
    saved = json.load(open(path))
    saved["model"] = {"name": "fashion_dnn"}
    json.dump(saved, open(path, "w"))
  else:
    open(path, "w").write('{"dataset": "fashion_mni')
  with pytest.raises(UserError, match=needle) as err:
    train_and_evaluate(tiny(), unfinished, log=quiet)
  assert "\n" not in str(err.value)
  assert _steps(unfinished) == [32, 48]  # nothing moved or written


# --- Numerical faults ----------------------------------------------------------------------

@pytest.mark.slow
def test_huge_learning_rate_stops_with_the_step_and_a_hint(tmp_path):
  workdir = tmp_path / "run"
  proc = run_cli("train", *TINY_FLAGS, "--config.optimizer.learning_rate=1e6",
                 f"--workdir={workdir}")
  one_line_error(proc, "non-finite at step 1 ", "Lower the learning rate",
                  "skip_nonfinite_updates")
  assert _steps(str(workdir)) == []  # nothing non-finite was ever checkpointed


def _poison(monkeypatch, first, last):
  """NaN images for steps first..last-1: the real train_step then sees a NaN loss."""
  real = step_lib.train_step

  def poisoned(state, batch, **kwargs):
    bad = (state.step >= first) & (state.step < last)
    images = jnp.where(bad, jnp.nan, step_lib.to_float(batch["image"]))
    return real(state, dict(batch, image=images), **kwargs)

  monkeypatch.setattr(step_lib, "train_step", poisoned)


@pytest.mark.slow
def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
  _poison(monkeypatch, 21, 10**6)
  workdir = str(tmp_path / "run")
  with pytest.raises(UserError, match=r"non-finite at step 21 \(epoch 2\).*learning rate"):
    train_and_evaluate(tiny(num_epochs=2), workdir, log=quiet)
  assert _steps(workdir) == [16]
  state, _, _ = checkpoint.restore_latest_good(_mngr(workdir), state_lib.build(tiny())[1],
                                               step_lib.zero_sums())
  assert int(state.step) == 16 and checkpoint.all_finite(state.params)


@pytest.mark.slow
def test_skip_nonfinite_updates_skips_and_counts(tmp_path, monkeypatch):
  _poison(monkeypatch, 21, 24)
  workdir = str(tmp_path / "run")
  train_and_evaluate(tiny(num_epochs=2, skip_nonfinite_updates=True), workdir, log=quiet)
  lines = [json.loads(l) for l in _read(workdir).splitlines()]
  assert [r["nonfinite_steps"] for r in lines] == [0, 3]
  assert all(jnp.isfinite(r["train_loss"]) for r in lines)
  mngr = _mngr(workdir)
  for step in mngr.all_steps():  # every saved step passes digest + finiteness checks
    checkpoint.restore(mngr, step, state_lib.build(tiny())[1], step_lib.zero_sums())


@pytest.mark.slow
def test_a_damaged_best_step_at_the_end_falls_back_to_the_latest_good_step_with_a_warning(
    tmp_path, monkeypatch, capsys):
  restore, failed = checkpoint.restore, []

  def damaged_once(mngr, step, state, sums):  # the best step's read fails its check
    if not failed:
      failed.append(step)
      raise checkpoint.Unusable("its contents do not match the digest saved with it")
    return restore(mngr, step, state, sums)

  monkeypatch.setattr(checkpoint, "restore", damaged_once)
  workdir = str(tmp_path / "run")
  results = train_and_evaluate(tiny(num_epochs=2), workdir, log=quiet)
  err = capsys.readouterr().err.strip().splitlines()
  assert err == [f"cnnlab: warning: the best checkpoint step {failed[0]} is unusable (its "
                 "contents do not match the digest saved with it); using the latest good one"]
  assert os.path.exists(os.path.join(workdir, "results.json"))
  # Here the best epoch is the last: the latest good step gives exactly the undamaged test.
  monkeypatch.undo()
  intact = train_and_evaluate(tiny(num_epochs=2), str(tmp_path / "intact"), log=quiet)
  drop = lambda r: {k: v for k, v in r.items() if k != "train_wall_time_s"}
  assert results["best_epoch"] == intact["best_epoch"] == 2 and drop(results) == drop(intact)


def test_a_bug_while_restoring_is_its_own_error_not_an_unusable_checkpoint(
    unfinished, monkeypatch):
  """Only a step's own damage makes it unusable: a TypeError in restoring (injected into the
  restore target) surfaces naming itself, for train and for viz/predict, and moves nothing."""
  def buggy_target(target, state):
    raise TypeError("injected bug in the restore target")

  monkeypatch.setattr(checkpoint.serialization, "from_state_dict", buggy_target)
  with pytest.raises(TypeError, match="injected bug in the restore target"):
    train_and_evaluate(tiny(), unfinished, log=quiet)
  with pytest.raises(TypeError, match="injected bug in the restore target"):
    restore.load_run(unfinished)
  assert _steps(unfinished) == [32, 48]
  assert not os.path.exists(os.path.join(unfinished, rundir.UNUSABLE))


def test_a_non_finite_state_is_never_checkpointed(tmp_path):
  mngr = checkpoint.manager(str(tmp_path / "checkpoints"))
  with pytest.raises(UserError, match="non-finite weights at step 3"):
    checkpoint.save(mngr, 3, {"w": jnp.array([1.0, jnp.inf])}, {}, {})
  checkpoint.wait(mngr)
  assert mngr.all_steps() == [] and os.listdir(tmp_path / "checkpoints") == []


# --- Disk full -----------------------------------------------------------------------------

@pytest.mark.slow
def test_disk_full_during_a_checkpoint_write_keeps_the_previous_one(
    ref, tmp_path, monkeypatch, caplog):
  write = jh.JsonCheckpointHandler._save_fn

  async def full(self, x, directory):
    if re.search(r"/32\.orbax-checkpoint-tmp(/|$)", str(directory)):
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory))
    return await write(self, x, directory)

  monkeypatch.setattr(jh.JsonCheckpointHandler, "_save_fn", full)
  errors.quiet_background_tracebacks()  # as every command's set-up does (cli/common.py)
  workdir = str(tmp_path / "run")
  with pytest.raises(UserError) as err:
    train_and_evaluate(tiny(), workdir, log=quiet)
  message = str(err.value)
  assert message.startswith("no space left on device while saving checkpoint step 32 to ")
  assert "free space and resume" in message and "\n" not in message
  assert not [r for r in caplog.records if r.exc_info]  # no Orbax tracebacks on the console
  assert _steps(workdir) == [16]
  monkeypatch.undo()  # space freed: the same command resumes and ends where `ref` ended
  train_and_evaluate(tiny(), workdir, log=quiet)
  _assert_same_run(workdir, ref)


def test_disk_full_in_the_json_writer_keeps_the_old_file(tmp_path, monkeypatch):
  path = str(tmp_path / "results.json")
  files.write_json(path, {"old": 1})

  def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

  monkeypatch.setattr(rundir.json, "dump", full)
  with pytest.raises(UserError, match="no space left on device while writing .*free space"):
    files.write_json(path, {"new": 2})
  assert files.read_json(path) == {"old": 1} and os.listdir(tmp_path) == ["results.json"]
