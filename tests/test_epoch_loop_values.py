"""The epoch loop (cnnlab.train.epochs: make_job, run_epochs, _train_epoch,
precompile_training) in-process, in seconds, on test_step_values' tiny model: 18 training
images in batches of 4 (4 steps an epoch, the last 2 images dropped), 8 evaluation images.
Every step trained then evaluated, the hook ending the loop, a stop mid-epoch or at an
epoch's end and the bit-identical resume, and the config reaching the job."""

import signal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnnlab import parallel
from cnnlab.train import epochs
from cnnlab.train import evaluate as evaluate_lib
from cnnlab.train import state as state_lib
from cnnlab.train import step as step_lib
from conftest import smoke_config
from test_step_values import IMAGES, LABELS, Tiny, tiny_state

TRAIN = tuple(np.concatenate([a, a[::-1], a[:2]]) for a in (IMAGES, LABELS))
adam_state = lambda: tiny_state(optax.adam(0.05))


class Interrupted(Exception):
  pass


class StopAt:
  """A StopFlag that a signal reaches during step `n`."""

  def __init__(self, n):
    self.n, self.signum = n, None

  def check(self, step):
    self.signum = signal.SIGTERM if step == self.n else self.signum
    return self.signum is not None


def job_of(**fields):
  config = smoke_config(batch_size=4, eval_batch_size=8, num_epochs=2, **fields)
  return epochs.make_job(config, parallel.make_mesh(1), TRAIN, (IMAGES[:8], LABELS[:8]))


@pytest.fixture(scope="module")
def job():
  return job_of()  # one job, so its programs compile once for the tests that share it


@pytest.fixture(scope="module")
def whole(job):
  """Two epochs without a stop: (state, records)."""
  records = []
  return run(job, adam_state(), records), records


def run(job, state, records, until=None, stop=None, compiling=None, sums=None):
  """run_epochs, each epoch's (record, step, train sums) appended to `records`; the hook ends
  the loop after epoch `until`; a stop mid-epoch raises Interrupted(state, sums), as the
  CLI's save-and-exit would."""

  def on_epoch(state, sums, record, train, seconds):
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(sums), step_lib.zero_sums(1))
    assert 0 < seconds < 600  # the epoch's training and evaluation time
    records.append((record, int(state.step), train))
    return record["epoch"] == until

  def on_interrupt(state, sums):
    raise Interrupted(state, sums)

  if sums is None:
    sums = parallel.put(step_lib.zero_sums(job.num_seeds), job.replicated)
  return epochs.run_epochs(job, state, sums, on_epoch, stop, on_interrupt, compiling)[0]


def test_the_loop_trains_every_step_of_each_epoch_then_evaluates_it(job, whole):
  state, records = whole
  assert (job.steps_per_epoch, job.num_seeds, len(job.eval_batches)) == (4, 1, 1)
  assert [(r["epoch"], r["step"], step) for r, step, _ in records] == [(1, 4, 4), (2, 8, 8)]
  assert [float(t["count"]) for _, _, t in records] == [16.0, 16.0]  # 4 steps of 4 images
  by_hand, sums = adam_state(), step_lib.zero_sums(1)
  for _ in range(8):
    by_hand, sums = job.train_batch(by_hand, sums, *next(job.batches.epoch(by_hand, 0)))
  jax.tree.map(np.testing.assert_array_equal, state.params, by_hand.params)
  assert float(sums["loss"]) == pytest.approx(float(records[0][2]["loss"] + records[1][2]["loss"]))
  val = evaluate_lib.evaluate(state, job.eval_batches)
  assert (records[1][0]["val_loss"], records[1][0]["val_accuracy"]) == (
      float(val["loss"]), float(val["accuracy"]))


def test_the_hook_ends_the_loop_and_a_precompiled_step_trains_the_same(job):
  records, again = [], []
  state = run(job, adam_state(), records, until=1)
  assert [(r["epoch"], step) for r, step, _ in records] == [(1, 4)]
  start = adam_state()
  thread = epochs.precompile_training(job, jax.eval_shape(lambda: start))
  assert thread is not None
  same = run(job, start, again, until=1, compiling=thread)
  jax.tree.map(np.testing.assert_array_equal, same.params, state.params)
  assert epochs.precompile_training(job._replace(batches=object()), None) is None  # streamed


def test_a_stop_mid_epoch_saves_there_and_the_resumed_run_is_the_same_run(job, whole):
  records = []
  with pytest.raises(Interrupted) as stopped:
    run(job, adam_state(), records, stop=StopAt(6))
  state, sums = stopped.value.args
  assert int(state.step) == 6 and float(sums["count"]) == 8.0  # 2 of epoch 2's steps
  with pytest.raises(Interrupted) as again:  # resumed mid-epoch, stopped again one step on
    run(job, state, records, sums=sums, stop=StopAt(7))
  state, sums = again.value.args
  assert int(state.step) == 7 and float(sums["count"]) == 12.0
  resumed = run(job, state, records, sums=sums)
  jax.tree.map(np.testing.assert_array_equal, resumed.params, whole[0].params)
  assert [r for r, _, _ in records] == [r for r, _, _ in whole[1]]


def test_a_stop_after_an_epochs_last_step_records_that_epoch_first(job):
  records = []
  with pytest.raises(Interrupted) as stopped:
    run(job, adam_state(), records, stop=StopAt(4))
  assert [(r["epoch"], step) for r, step, _ in records] == [(1, 4)]
  assert int(stopped.value.args[0].step) == 5  # epoch 2's first step saw the flag


@pytest.mark.parametrize("fields", [{"label_smoothing": 0.2}, {"augment.flip": True}])
def test_the_jobs_step_gets_the_configs_smoothing_and_augmentation(whole, fields):
  changed = []
  run(job_of(**fields), adam_state(), changed, until=1)
  assert abs(whole[1][0][0]["train_loss"] - changed[0][0]["train_loss"]) > 1e-3


def test_the_evaluation_flips_when_the_config_says_so_and_no_guard_means_allow(whole):
  job, flipped = job_of(eval_flip_tta=True, transfer_guard=""), []
  state = run(job, adam_state(), flipped, until=1)
  val = evaluate_lib.evaluate(state, job.eval_batches, flip_tta=True)
  assert flipped[0][0]["val_loss"] == float(val["loss"])
  unflipped = whole[1][0][0]  # epoch 1 of the same training, evaluated without flips
  assert flipped[0][0]["train_loss"] == unflipped["train_loss"]
  assert abs(flipped[0][0]["val_loss"] - unflipped["val_loss"]) > 1e-4


class HostData:
  """An input mode that hands the step NumPy arrays: each step moves them to the device."""

  def __init__(self, resident):
    self.resident = resident

  def epoch(self, state, start):
    images, labels, order = next(self.resident.epoch(state, start))
    while True:
      yield np.asarray(images), np.asarray(labels), np.asarray(order)

  def close(self):
    pass


def test_the_epoch_and_its_evaluation_run_under_the_configs_transfer_guard(job):
  assert job.config.transfer_guard == "disallow"
  with pytest.raises(Exception, match="[Dd]isallowed host-to-device transfer"):
    run(job._replace(batches=HostData(job.batches)), adam_state(), [])
  on_host = jax.tree.map(np.asarray, job.eval_batches)
  with pytest.raises(Exception, match="[Dd]isallowed host-to-device transfer"):
    run(job._replace(eval_batches=on_host), adam_state(), [])


def test_an_epoch_of_more_than_100_steps_trains_them_all():
  images, labels = (np.tile(a, (51,) + (1,) * (a.ndim - 1)) for a in TRAIN[:2])  # 918 images
  config = smoke_config(batch_size=8, eval_batch_size=8, num_epochs=1)
  job = epochs.make_job(config, parallel.make_mesh(1), (images, labels), (IMAGES, LABELS))
  records = []
  state = run(job, adam_state(), records)
  assert job.steps_per_epoch == 114 and int(state.step) == 114
  assert float(records[0][2]["count"]) == 912.0


def test_the_jobs_step_skips_a_nonfinite_update_when_asked(job):
  def broken():  # an inf in the Dense bias: the loss and every gradient are non-finite
    state = adam_state()
    bias = state.params["Dense_0"]["bias"]
    return state.replace(params={**state.params, "Dense_0": {
        **state.params["Dense_0"], "bias": bias.at[0].set(jnp.inf)}})

  before = adam_state().params["BatchNorm_0"]["bias"]
  for j, kept in ((job, False), (job_of(skip_nonfinite_updates=True), True)):
    state = broken()  # the step donates it
    after, sums = j.train_batch(state, step_lib.zero_sums(1), *next(j.batches.epoch(state, 0)))
    assert np.array_equal(after.params["BatchNorm_0"]["bias"], before) == kept
    assert float(sums["nonfinite"]) == 1.0


def test_two_seeds_draw_each_its_own_epoch_order_and_train_each_its_own_state():
  job = job_of(num_seeds=2)
  states = parallel.stack_seeds(lambda key: state_lib.create_train_state(
      Tiny(), optax.adam(0.05), key, (2, 2, 1)), [1, 2])
  order = job.batches.epoch_order(jnp.array([4, 4]), states.rng)
  assert job.num_seeds == 2 and order.shape == (2, 18)
  for i in range(2):
    np.testing.assert_array_equal(order[i], step_lib.epoch_permutation(states.rng[i], 1, 18))
  data = next(job.batches.epoch(states, 0))
  after, sums = job.train_batch(states, step_lib.zero_sums(2), *data)
  assert after.step.tolist() == [1, 1] and sums["count"].tolist() == [4.0, 4.0]
  assert sums["loss"][0] != sums["loss"][1]  # each seed its own weights and batch
