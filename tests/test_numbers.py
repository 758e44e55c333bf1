"""The quick tier owns the core's numbers: label smoothing in the loss, the checkpoint digest,
which step a resume restores, best vs last epoch at the end, stacked seeds, the config checks,
and pooling ties and padding against NumPy. Every training here is tiny (512 real images).

Known values measured on the 2-core VM that built cnnlab (XLA:CPU, jax 0.10) are asserted
with a tolerance for other CPUs: the same commit gave test accuracies 0.7520 and 0.7560 for
the smoke config on two VMs (docs/testing.md).
"""

import json
import math
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnlab import checkpoint, config as config_lib, ops, rundir
from cnnlab.errors import UserError
from cnnlab.inspect import restore
from cnnlab.train import step as step_lib
from cnnlab.train import train_and_evaluate
from conftest import needs_data, tiny

quiet = lambda *a: None


# --- label smoothing -------------------------------------------------------------------------

LOGITS = np.array([[2.0, 1.0, 0.0, -1.0], [0.5, 0.5, 3.0, -2.0]], np.float32)
LABELS = np.array([0, 3])


def smoothed_ce(logits, labels, eps):
  """The formula: targets (1 - eps) one-hot + eps / K, loss -sum(target * log_softmax)."""
  k = logits.shape[-1]
  log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  target = np.full(logits.shape, eps / k)
  target[np.arange(len(labels)), labels] += 1 - eps
  return -(target * log_p).sum(-1)


def entropy_of_smoothed_target(eps, k=10):
  """The least smoothed cross-entropy any logits can reach (the target's own entropy)."""
  hit, miss = 1 - eps + eps / k, eps / k
  return -hit * math.log(hit) - (k - 1) * miss * math.log(miss)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
def test_cross_entropy_with_and_without_smoothing_equals_the_formula(eps):
  got = np.asarray(step_lib.cross_entropy(jnp.asarray(LOGITS), jnp.asarray(LABELS), eps))
  np.testing.assert_allclose(got, smoothed_ce(LOGITS, LABELS, eps), rtol=1e-6)
  # known values: without smoothing -log softmax of the label (0.4402, 5.1578 by hand)
  expect = {0.0: [0.4401898, 5.1577797], 0.1: [0.5901898, 4.9077797],
            0.5: [1.1901898, 3.9077796]}[eps]
  np.testing.assert_allclose(got, expect, rtol=1e-6)


# --- the checkpoint digest --------------------------------------------------------------------

def test_digest_sees_a_finite_change_of_one_value_and_nothing_else():
  tree = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.float32(1.5)}
  same = jax.tree.map(np.copy, tree)
  assert checkpoint.digest(tree) == checkpoint.digest(same)
  nudged = jax.tree.map(np.copy, tree)
  nudged["a"][1, 2] = np.nextafter(np.float32(5), np.float32(6))  # one ulp, still finite
  assert checkpoint.all_finite(nudged) and checkpoint.digest(nudged) != checkpoint.digest(tree)
  # the same bytes as another dtype or shape are another tree
  for other in (tree["a"].reshape(3, 2), tree["a"].view(np.int32)):
    assert checkpoint.digest({"a": other, "b": tree["b"]}) != checkpoint.digest(tree)
  assert checkpoint.digest([tree["b"], tree["a"]]) != checkpoint.digest([tree["a"], tree["b"]])
  assert checkpoint.digest({"a": np.asarray(jnp.asarray(tree["a"])), "b": tree["b"]}) == \
      checkpoint.digest(tree)  # device arrays hash as their host copies


# --- best vs last, and which step a resume picks ----------------------------------------------

PEAKED = dict(num_epochs=4, early_stopping_patience=0)  # lr 1e-2: validation peaks at epoch 3


def test_a_resumed_run_keeps_its_best_step_when_it_is_older_than_the_two_latest(tmp_path):
  """The best step survives a new manager (a resume): each step's metric is on disk."""
  state, sums = {"w": jnp.ones(3)}, {"loss": jnp.zeros(())}
  def save(steps_and_losses):
    mngr = checkpoint.manager(str(tmp_path), keep_lowest=rundir.BEST_METRIC)
    for step, loss in steps_and_losses:
      checkpoint.save(mngr, step, state, sums, {}, metrics={rundir.BEST_METRIC: loss})
    checkpoint.wait(mngr)
    return sorted(mngr.all_steps())
  assert save([(1, 1.0), (2, 0.5), (3, 0.9)]) == [2, 3]
  assert save([(4, 0.8), (5, 0.7)]) == [2, 4, 5]  # was [4, 5]: the best, step 2, deleted


def peaked_config():
  config = tiny(**PEAKED)
  config.optimizer.learning_rate = 1e-2
  return config


@pytest.fixture(scope="module")
def peaked(tmp_path_factory):
  """A 4-epoch tiny run whose best epoch (lowest validation loss) is 3, not the last.

  Measured here: val loss 1.487, 0.849, 0.561, 0.590 (epoch 3 best by 5%).
  """
  from conftest import has_data, DATA_DIR
  if not has_data():
    pytest.skip(f"Fashion-MNIST IDX files not in {DATA_DIR}")
  workdir = str(tmp_path_factory.mktemp("peaked"))
  results = train_and_evaluate(peaked_config(), workdir, log=quiet)
  return workdir, results


def _history(workdir):
  return [json.loads(l) for l in open(os.path.join(workdir, rundir.METRICS))]


@needs_data
def test_the_test_set_sees_the_best_epoch_not_the_last(peaked):
  workdir, results = peaked
  history = _history(workdir)
  losses = [r["val_loss"] for r in history]
  assert losses == pytest.approx([1.487, 0.849, 0.561, 0.590], abs=0.02)
  assert (results["best_epoch"], results["best_step"], results["epochs"]) == (3, 48, 4)
  assert results["val_loss"] == history[2]["val_loss"] != history[-1]["val_loss"]
  assert results["val_accuracy"] == history[2]["val_accuracy"]
  assert results["test_accuracy"] == pytest.approx(0.7773, abs=0.01)  # 199/256 here
  steps = sorted(int(s) for s in os.listdir(os.path.join(workdir, rundir.CHECKPOINTS)))
  assert steps == [48, 64]  # the best and the two latest
  _, _, best, _ = restore.load_run(workdir)
  _, _, last, _ = restore.load_run(workdir, which="latest")
  assert (int(best.step), int(last.step)) == (48, 64)


def _plant_a_finitely_changed_step(workdir, scratch, good=64, bad=80):
  """Step `bad`: step `good`'s tree with one weight moved by +0.5 (still finite) and its meta
  (so its digest) unchanged, as a silent bit error in a copy would leave it. Saved by a
  manager of its own and moved in, so the run's retention policy deletes nothing."""
  checkpoints = os.path.join(workdir, rundir.CHECKPOINTS)
  args = checkpoint.ocp.args
  raw = checkpoint.manager(checkpoints, read_only=True).restore(
      good, args=args.Composite(state=args.StandardRestore(), meta=args.JsonRestore()))
  tree, meta = raw["state"], raw["meta"]
  kernel = next(x for x in jax.tree.leaves(tree["state"]["params"]) if np.ndim(x) == 4)
  kernel.flat[0] += 0.5  # the restored host array itself, inside `tree`
  mngr = checkpoint.manager(scratch)
  mngr.save(bad, args=args.Composite(state=args.StandardSave(tree), meta=args.JsonSave(meta)))
  mngr.wait_until_finished()
  mngr.close()
  shutil.move(os.path.join(scratch, str(bad)), os.path.join(checkpoints, str(bad)))
  return kernel.flat[0]


@needs_data
def test_resume_restores_the_newest_good_step_and_the_digest_catches_a_finite_change(
    peaked, tmp_path, capsys):
  workdir = str(tmp_path / "run")
  shutil.copytree(peaked[0], workdir)
  os.remove(os.path.join(workdir, rundir.RESULTS))  # as if killed before the test evaluation
  value = _plant_a_finitely_changed_step(workdir, str(tmp_path / "scratch"))
  assert np.isfinite(value)
  steps = sorted(int(s) for s in os.listdir(os.path.join(workdir, rundir.CHECKPOINTS)))
  assert steps == [48, 64, 80]
  log = []
  results = train_and_evaluate(peaked_config(), workdir, log=log.append)
  warnings = [l for l in capsys.readouterr().err.splitlines() if "warning" in l]
  assert "step 80" in warnings[0] and "digest" in warnings[0], warnings
  assert any("resuming" in l and "from step 64" in l for l in log), log  # not 48, not 80
  assert os.listdir(os.path.join(workdir, rundir.UNUSABLE)) == ["80"]
  drop = lambda r: {k: v for k, v in r.items() if k != "train_wall_time_s"}
  assert drop(results) == drop(peaked[1])
  assert _history(workdir) == _history(peaked[0])  # nothing retrained


# --- stacked seeds and label smoothing in a real run -------------------------------------------

@needs_data
def test_two_stacked_seeds_differ_and_config_label_smoothing_reaches_the_loss(tmp_path):
  """Smoothing 0.9 puts a floor under the training loss: the smoothed target's entropy, 2.266.
  Measured here: 2.298 and 2.296 per seed (without smoothing, the same epoch gives 1.891)."""
  eps = 0.9
  results = train_and_evaluate(tiny(num_epochs=1, num_seeds=2, label_smoothing=eps),
                               str(tmp_path), log=quiet)
  record, = _history(str(tmp_path))
  floor = entropy_of_smoothed_target(eps)
  assert floor == pytest.approx(2.2660, abs=1e-4)
  assert all(floor < loss < floor + 0.1 for loss in record["train_loss_per_seed"])
  assert results["seeds"] == [0, 1]
  for key in ("train_loss_per_seed", "val_loss_per_seed"):
    a, b = record[key]
    assert a != b and record[key.replace("_per_seed", "")] == pytest.approx((a + b) / 2)
  a, b = results["test_accuracy_per_seed"]
  assert a != b and results["test_accuracy"] == pytest.approx((a + b) / 2)
  assert results["test_accuracy_std"] == pytest.approx(abs(a - b) / 2)


# --- config checks (no JAX call at import: mutmut forks after collecting the tests) --------

BAD = {
    "batch_size": (-32, "batch_size must be a positive integer"),
    "eval_batch_size": (0, "eval_batch_size must be a positive integer"),
    "num_epochs": (True, "num_epochs must be a positive integer"),
    "optimizer.learning_rate": (float("nan"), "learning_rate must be a positive number"),
    "optimizer.name": ("adma", "unknown optimizer.name 'adma'"),
    "optimizer.schedule": ("cosin", "unknown optimizer.schedule 'cosin'"),
    "early_stopping_patience": (-1, "early_stopping_patience must be >= 0"),
    "validation_fraction": (1.0, "validation_fraction must be in (0, 1)"),
    "label_smoothing": (1.0, "label_smoothing must be in [0, 1)"),
    "model.dropout": (1.0, "model.dropout must be in [0, 1)"),
    "train_size": (-1, "train_size must be >= 0"),
    "test_size": (-5, "test_size must be >= 0"),
    "transfer_guard": ("deny", "transfer_guard must be allow, log or disallow"),
    "dtype": ("float16", "dtype must be float32 or bfloat16"),
    "augment.crop_padding": (-1, "crop_padding must be an integer >= 0"),
    "augment.erase_prob": (1.5, "erase_prob must be in [0, 1]"),
    "augment.erase_area": ((0.5, 0.2), "erase_area must be (min, max)"),
    "augment.erase_aspect": (0.0, "erase_aspect must be in (0, 1]"),
    "num_devices": (-1, "device(s) are available"),
}
EDGES_ACCEPTED = {  # the limits themselves, on the allowed side
    "early_stopping_patience": 0, "label_smoothing": 0.0, "model.dropout": 0.0,
    "validation_fraction": 0.01, "train_size": 0, "augment.crop_padding": 0,
    "augment.erase_prob": 1.0, "augment.erase_area": (1.0, 1.0), "augment.erase_aspect": 1.0,
    "transfer_guard": "disallow", "dtype": "bfloat16", "optimizer.learning_rate": 1e-9,
    "num_epochs": 1, "num_devices": 1,
}


def _with(key, value):
  config = tiny()
  target = config
  *path, last = key.split(".")
  for p in path:
    target = target[p]
  with target.unlocked() if hasattr(target, "unlocked") else _nothing():
    target[last] = value
  return config


class _nothing:
  def __enter__(self):
    return self

  def __exit__(self, *a):
    return False


@pytest.mark.parametrize("key", sorted(BAD))
def test_config_check_names_each_bad_field(key):
  value, needle = BAD[key]
  with pytest.raises(UserError, match=None) as err:
    config_lib.check(_with(key, value))
  assert needle in str(err.value) and "\n" not in str(err.value), str(err.value)


@pytest.mark.parametrize("key", sorted(EDGES_ACCEPTED))
def test_config_check_accepts_the_limits(key):
  config_lib.check(_with(key, EDGES_ACCEPTED[key]))


# --- pooling ties and padding against NumPy ---------------------------------------------------

TIES = np.array([[1, 1, 0, 2, 2],
                 [1, 0, 2, 2, 0],
                 [3, 3, 3, -1, -1],
                 [0, 3, -1, -1, 4]], np.float32)


@pytest.mark.parametrize("kind, expect", [
    # 3x3 windows, stride 2, one pixel of zero padding... that never wins: max pads -inf,
    # min +inf, avg counts only real pixels (worked by hand from TIES)
    ("max", [[1, 2, 2], [3, 3, 4]]),
    ("min", [[0, 0, 0], [0, -1, -1]]),
    ("avg", [[3 / 4, 7 / 6, 6 / 4], [15 / 9, 10 / 9, 3 / 6]]),
])
def test_pooling_with_ties_and_padding_equals_numbers_by_hand(kind, expect):
  y = ops.pool(TIES, 3, stride=2, padding=1, kind=kind)
  np.testing.assert_allclose(np.asarray(y), np.asarray(expect, np.float32), rtol=1e-6)


def test_tied_maxima_send_the_gradient_to_the_first_in_row_major_order():
  """As XLA's select_and_scatter does for reduce_window (and flax's max_pool)."""
  x = jnp.asarray(TIES[:4, :4])
  grad = np.asarray(jax.grad(lambda x: ops.max_pool(x, 2).sum())(x))
  expect = np.zeros((4, 4), np.float32)
  for i, j in [(0, 0), (0, 3), (2, 0), (2, 2)]:  # ties: 1 at (0,0) (0,1) (1,0); 2, 3 likewise
    expect[i, j] = 1
  np.testing.assert_array_equal(grad, expect)
  grad_min = np.asarray(jax.grad(lambda x: ops.min_pool(x, 2).sum())(x))
  expect_min = np.zeros((4, 4), np.float32)
  for i, j in [(1, 1), (0, 2), (3, 0), (2, 3)]:
    expect_min[i, j] = 1
  np.testing.assert_array_equal(grad_min, expect_min)


def test_average_pools_that_do_not_tile_equal_numpy():
  """VALID leaves a row or column out; SAME pads one after (not counted in the mean)."""
  for image in (TIES, TIES.T):  # 4x5, 5x4
    x = image[None, :, :, None]
    mean = lambda i, j: np.mean(image[i:i + 2, j:j + 2])
    rows, cols = range(0, image.shape[0], 2), range(0, image.shape[1], 2)
    valid = [[mean(i, j) for j in cols if j + 2 <= image.shape[1]] for i in rows
             if i + 2 <= image.shape[0]]
    np.testing.assert_allclose(np.asarray(ops.avg_pool(x, 2))[0, ..., 0], valid, rtol=1e-6)
    same = [[mean(i, j) for j in cols] for i in rows]
    np.testing.assert_allclose(np.asarray(ops.avg_pool(x, 2, padding="same"))[0, ..., 0], same,
                               rtol=1e-6)
  square = TIES[:, :4]  # 4x4, tiled by 2x2 windows until padded before: the windows move
  for padding, stop in ((1, 5), (((1, 0), (1, 0)), 3)):
    y = np.asarray(ops.avg_pool(square[None, :, :, None], 2, padding=padding))[0, ..., 0]
    expect = [[np.mean(square[max(i, 0):i + 2, max(j, 0):j + 2]) for j in range(-1, stop, 2)]
              for i in range(-1, stop, 2)]
    np.testing.assert_allclose(y, expect, rtol=1e-6)


def test_tied_maxima_of_non_square_windows_over_channels_get_the_gradient_first():
  """Windows 2x3 tiling a (2, 4, 6, 2) batch of small integers (many ties): the gradient of
  each window goes to its first maximum in row-major order (np.argmax's first)."""
  x = np.random.default_rng(0).integers(0, 2, (2, 4, 6, 2)).astype(np.float32)
  grad = np.asarray(jax.grad(lambda x: ops.max_pool(x, (2, 3)).sum())(jnp.asarray(x)))
  expect = np.zeros_like(x)
  for n, i, j, c in np.ndindex(2, 2, 2, 2):
    window = x[n, 2 * i:2 * i + 2, 3 * j:3 * j + 3, c]
    a, b = np.unravel_index(np.argmax(window), window.shape)
    expect[n, 2 * i + a, 3 * j + b, c] = 1
  np.testing.assert_array_equal(grad, expect)


def test_padding_never_wins_even_when_every_real_value_is_beyond_zero():
  """Zero padding would win a max over negatives (or a min over positives): cnnlab pads with
  -inf / +inf instead."""
  x = -np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1)
  np.testing.assert_array_equal(np.asarray(ops.max_pool(x, 2, padding="same"))[0, ..., 0],
                                [[-1, -3], [-7, -9]])
  np.testing.assert_array_equal(np.asarray(ops.min_pool(-x, 2, padding=1))[0, ..., 0],
                                [[1, 2], [4, 5]])
