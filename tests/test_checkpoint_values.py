"""checkpoint.py in-process on tiny pytrees (seconds, no training): what is kept, what a save
writes, which step a restore picks (newest good, best, else newest good), the integrity
refusals and their words, setting bad steps aside without overwriting, disk full. Written for
mutation testing (tools/mutate.py checkpoint); test_numbers/test_reliability run the same
rules inside trainings. A step is made bad by saving it with a wrong digest (monkeypatched).
"""

import errno
import hashlib
import os

import flax
import numpy as np
import pytest

from cnnlab import checkpoint
from cnnlab.errors import UserError

SUMS = {"loss": np.float32(0.25), "count": np.int32(4)}


def state(value, shape=(2, 3)):
  return {"params": {"Dense_0": {"kernel": np.full(shape, value, np.float32),
                                 "bias": np.arange(shape[-1], dtype=np.float32)}}}


def saved(directory, steps, keep_lowest=None, bad=(), metrics=None):
  """A manager with `steps` saved (state value = step); those in `bad` with a wrong digest."""
  mngr = checkpoint.manager(str(directory), keep_lowest=keep_lowest)
  for step in steps:
    real = checkpoint.digest
    if step in bad:
      checkpoint.digest = lambda tree: "0" * 64
    try:
      checkpoint.save(mngr, step, state(float(step)), SUMS, {"epoch": step},
                      metrics=metrics and {keep_lowest: metrics[step]})
    finally:
      checkpoint.digest = real
    checkpoint.wait(mngr)
  return mngr


def kernel(restored):
  return float(restored[0]["params"]["Dense_0"]["kernel"][0, 0])


def test_digest_changes_with_each_value_dtype_shape_and_order():
  tree = state(1.0)
  assert checkpoint.digest(tree) == checkpoint.digest(state(1.0))
  nudged = state(1.0)
  nudged["params"]["Dense_0"]["bias"][2] = np.nextafter(np.float32(2), np.float32(3))
  assert checkpoint.digest(nudged) != checkpoint.digest(tree)
  a = np.arange(6, dtype=np.float32)
  others = [a, a.reshape(2, 3), a.view(np.int32), a[::-1], [a, a], [a[:3], a[3:]]]
  assert len({checkpoint.digest(t) for t in others}) == len(others)
  # by hand: sha256 of "(dtype('float32'), (6,))" then the bytes of 0..5 (float32)
  sha = lambda data: hashlib.sha256(data).hexdigest()
  assert checkpoint.digest(a) == sha(b"(dtype('float32'), (6,))" + a.tobytes())
  assert checkpoint.digest(a[::2]) == sha(b"(dtype('float32'), (3,))" + a[::2].copy().tobytes())


def test_all_finite_looks_at_floats_only():
  assert checkpoint.all_finite({"w": np.ones(3, np.float32), "n": np.int32(7)})
  assert not checkpoint.all_finite({"w": np.float32([1, np.nan])})
  assert not checkpoint.all_finite([np.float32(1), np.float64(-np.inf)])
  assert checkpoint.all_finite({"n": np.iinfo(np.int64).max, "b": np.bool_(True)})


def test_the_two_latest_steps_are_kept_and_with_keep_lowest_the_lowest_one(tmp_path):
  assert saved(tmp_path / "a", [1, 2, 3]).all_steps() == [2, 3]
  losses = {1: 0.3, 2: 0.4, 3: 0.9, 4: 0.8}
  mngr = saved(tmp_path / "b", losses, keep_lowest="val_loss", metrics=losses)
  assert sorted(mngr.all_steps()) == [1, 3, 4]
  # steps saved without a metric are not kept as best: only the two latest stay
  assert sorted(saved(tmp_path / "c", [1, 2, 3], keep_lowest="val_loss").all_steps()) == [2, 3]


def test_a_read_only_manager_creates_and_cleans_nothing(tmp_path):
  missing = tmp_path / "none"
  assert checkpoint.manager(str(missing), read_only=True).all_steps() == []
  assert not missing.exists()
  saved(tmp_path / "c", [1])
  leftover = tmp_path / "c" / "2.orbax-checkpoint-tmp-1234"
  leftover.mkdir()
  checkpoint.manager(str(tmp_path / "c"), read_only=True)
  assert leftover.exists()
  checkpoint.manager(str(tmp_path / "c"))
  assert not leftover.exists()


@flax.struct.dataclass
class Train:  # a TrainState-like struct: restored as the struct, not as a dict
  params: dict
  step: np.ndarray


def test_save_then_restore_gives_the_values_and_the_meta(tmp_path):
  mngr = saved(tmp_path, [3])
  got_state, got_sums, meta = checkpoint.restore(mngr, 3, state(0.0), SUMS)
  np.testing.assert_array_equal(got_state["params"]["Dense_0"]["kernel"], np.full((2, 3), 3.0))
  np.testing.assert_array_equal(got_state["params"]["Dense_0"]["bias"], [0.0, 1.0, 2.0])
  assert got_sums == {"loss": 0.25, "count": 4} and got_sums["count"].dtype == np.int32
  assert meta == {"epoch": 3, "step": 3, "digest": checkpoint.digest(
      {"state": state(3.0), "sums": SUMS})}
  checkpoint.save(mngr, 4, Train(state(4.0)["params"], np.int32(4)), SUMS, {})
  checkpoint.wait(mngr)
  got, _, _ = checkpoint.restore(mngr, 4, Train(state(0.0)["params"], np.int32(0)), SUMS)
  assert isinstance(got, Train) and got.step == 4 and got.params["Dense_0"]["kernel"][1, 2] == 4


def test_a_step_of_another_tree_is_unusable(tmp_path):
  mngr = saved(tmp_path, [1])
  other = state(0.0)
  del other["params"]["Dense_0"]["bias"]
  with pytest.raises(checkpoint.Unusable, match="tree structures do not match"):
    checkpoint.restore(mngr, 1, other, SUMS)


def test_a_step_of_another_shape_is_unusable(tmp_path):
  """Orbax hands back the saved (2, 3) for a (4, 5) target without a word; restore refuses."""
  mngr = saved(tmp_path, [1])
  with pytest.raises(checkpoint.Unusable) as err:
    checkpoint.restore(mngr, 1, state(0.0, shape=(4, 5)), SUMS)
  assert str(err.value) == ("it holds ['state']['params']['Dense_0']['bias'] of shape (3,), "
                            "where the model of config.json has (5,)")


def test_non_finite_weights_are_refused_with_the_step(tmp_path):
  mngr = checkpoint.manager(str(tmp_path))
  with pytest.raises(UserError) as err:
    checkpoint.save(mngr, 9, state(np.nan), SUMS, {})
  assert str(err.value) == ("refusing to checkpoint non-finite weights at step 9; the last "
                            "good checkpoint is kept. Lower the learning rate or set "
                            "--config.skip_nonfinite_updates=True")
  checkpoint.wait(mngr)
  assert mngr.all_steps() == []


def test_restore_refuses_a_wrong_digest_and_non_finite_values(tmp_path, monkeypatch):
  mngr = saved(tmp_path, [1], bad=[1])
  with pytest.raises(checkpoint.Unusable, match="^its contents do not match the digest "
                                                "saved with it$"):
    checkpoint.restore(mngr, 1, state(0.0), SUMS)
  monkeypatch.setattr(checkpoint, "all_finite", lambda tree: True)  # NaN gets saved
  mngr2 = checkpoint.manager(str(tmp_path / "nan"))
  checkpoint.save(mngr2, 2, state(np.nan), SUMS, {})
  checkpoint.wait(mngr2)
  monkeypatch.undo()
  with pytest.raises(checkpoint.Unusable, match="^it holds non-finite values$"):
    checkpoint.restore(mngr2, 2, state(0.0), SUMS)


def test_an_unreadable_step_is_unusable_in_one_line(tmp_path):
  mngr = saved(tmp_path, [1])
  for name in os.listdir(tmp_path / "1" / "meta"):
    os.remove(tmp_path / "1" / "meta" / name)
  with pytest.raises(checkpoint.Unusable) as err:
    checkpoint.restore(mngr, 1, state(0.0), SUMS)
  assert str(err.value) == " ".join(str(err.value.__cause__).split())
  assert isinstance(err.value.__cause__, checkpoint._UNREADABLE)


def test_restore_takes_the_newest_good_step_or_the_best_and_says_what_it_skips(tmp_path):
  log, template = [], (state(0.0), SUMS)
  good = saved(tmp_path / "good", [1, 2])
  assert kernel(checkpoint.restore_latest_good(good, *template, log=log.append)) == 2.0
  assert kernel(checkpoint.restore_best(good, 1, *template, log=log.append)) == 1.0
  assert kernel(checkpoint.restore_best(good, None, *template, log=log.append)) == 2.0
  assert kernel(checkpoint.restore_best(good, 7, *template, log=log.append)) == 2.0  # not kept
  assert log == []
  newest_bad = saved(tmp_path / "newest_bad", [1, 2], bad=[2])
  assert kernel(checkpoint.restore_latest_good(newest_bad, *template, log=log.append)) == 1.0
  assert log == [f"cnnlab: warning: checkpoint step 2 in {newest_bad.directory} is unusable (its"
                 " contents do not match the digest saved with it); trying the previous one"]
  assert sorted(os.listdir(tmp_path / "newest_bad")) == ["1", "2"]  # no set_aside_to: kept
  best_bad = saved(tmp_path / "best_bad", [1, 2], bad=[1])
  assert kernel(checkpoint.restore_best(best_bad, 1, *template, log=log.append)) == 2.0
  assert log[1:] == ["cnnlab: warning: the best checkpoint step 1 is unusable (its contents do "
                     "not match the digest saved with it); using the latest good one"]


def test_no_good_step_gives_none_and_moves_nothing(tmp_path):
  mngr = saved(tmp_path / "ckpt", [1, 2], bad=[1, 2])
  log = []
  aside = tmp_path / "aside"
  assert checkpoint.restore_latest_good(mngr, state(0.0), SUMS, log=log.append,
                                        set_aside_to=str(aside)) is None
  assert len(log) == 2 and not aside.exists()
  assert checkpoint.restore_latest_good(saved(tmp_path / "empty", []), state(0.0), SUMS) is None


def test_bad_steps_are_set_aside_never_overwriting(tmp_path):
  aside = tmp_path / "unusable"
  mngr = saved(tmp_path / "ckpt", [2, 3], bad=[3])
  log = []
  restored = checkpoint.restore_latest_good(mngr, state(0.0), SUMS, log=log.append,
                                            set_aside_to=str(aside))
  assert kernel(restored) == 2.0 and mngr.all_steps() == [2]
  assert log[1] == f"cnnlab: warning: moved unusable checkpoint step 3 to {aside}/3"
  (aside / "3" / "keep").write_text("an earlier one")
  for expect in ("3.1", "3.2"):  # step 3 again, bad again: never onto an earlier one
    mngr = saved(tmp_path / "ckpt", [3], bad=[3])
    checkpoint.restore_latest_good(mngr, state(0.0), SUMS, log=log.append,
                                   set_aside_to=str(aside))
    assert log[-1] == f"cnnlab: warning: moved unusable checkpoint step 3 to {aside}/{expect}"
  assert sorted(os.listdir(aside)) == ["3", "3.1", "3.2"]
  assert (aside / "3" / "keep").read_text() == "an earlier one"


class FakeManager:  # fake: two steps on "disk", restored by a monkeypatched restore
  directory = "/fake"

  def all_steps(self):
    return [1, 2]


def test_a_long_reason_is_cut_to_160_characters(monkeypatch):
  def restore(mngr, step, *a):
    if step == 2:
      raise checkpoint.Unusable("x" * 200)
    return "step 1"

  monkeypatch.setattr(checkpoint, "restore", restore)
  log = []
  assert checkpoint.restore_latest_good(FakeManager(), None, None, log=log.append) == "step 1"
  assert log == [f"cnnlab: warning: checkpoint step 2 in /fake is unusable ({'x' * 160}); "
                 "trying the previous one"]
  log.clear()
  assert checkpoint.restore_best(FakeManager(), 2, None, None, log=log.append) == "step 1"
  assert log[0] == (f"cnnlab: warning: the best checkpoint step 2 is unusable ({'x' * 160}); "
                    "using the latest good one")
  assert log[1].startswith("cnnlab: warning: checkpoint step 2 in /fake")  # the same log


def test_saved_param_shapes_reads_the_newest_step(tmp_path):
  assert checkpoint.saved_param_shapes(checkpoint.manager(str(tmp_path / "none"))) is None
  mngr = checkpoint.manager(str(tmp_path / "a"))
  for step, shape in ((1, (2, 3)), (2, (4, 5))):
    checkpoint.save(mngr, step, state(1.0, shape), SUMS, {})
    checkpoint.wait(mngr)
  assert checkpoint.saved_param_shapes(mngr) == {"Dense_0": {"kernel": (4, 5), "bias": (5,)}}
  os.remove(tmp_path / "a" / "2" / "state" / "_METADATA")
  assert checkpoint.saved_param_shapes(mngr) is None


def _full(*args, **kwargs):
  raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_names_the_step_and_other_errors_keep_theirs(tmp_path, monkeypatch):
  mngr = checkpoint.manager(str(tmp_path))
  checkpoint.save(mngr, 5, state(5.0), SUMS, {})
  mngr.wait_until_finished()  # the save lands; the wait below sees a full disk
  monkeypatch.setattr(mngr, "wait_until_finished", _full)
  expect = (f"no space left on device while saving checkpoint step 5 to {mngr.directory}; the "
            "previous checkpoints are kept: free space and resume (run the same command again)")
  with pytest.raises(UserError) as err:
    checkpoint.wait(mngr)
  assert str(err.value) == expect
  with pytest.raises(UserError, match="^no space left on device while saving a checkpoint to "):
    checkpoint.wait(mngr)  # nothing in flight any more
  monkeypatch.setattr(mngr, "wait_until_finished", lambda: None)
  monkeypatch.setattr(mngr, "save", _full)
  with pytest.raises(UserError, match="^no space left on device while saving checkpoint step 6 "):
    checkpoint.save(mngr, 6, state(6.0), SUMS, {})

  def bug(*args, **kwargs):
    raise RuntimeError("a bug")

  monkeypatch.setattr(mngr, "save", bug)
  with pytest.raises(RuntimeError, match="a bug"):
    checkpoint.save(mngr, 7, state(7.0), SUMS, {})
  monkeypatch.setattr(mngr, "wait_until_finished", bug)
  with pytest.raises(RuntimeError, match="a bug"):
    checkpoint.wait(mngr)
