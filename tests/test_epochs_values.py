"""cnnlab.train.epochs and epoch_log in-process, in seconds: an epoch's metrics line from its
sums (one seed and two), the augmentation block the step gets, the stop flag, what EpochLog
writes (metrics.jsonl, timings.jsonl, TensorBoard, the log line), and the epoch loop itself on
a tiny model (every step trained, the hook, a stop mid-epoch or at an epoch's end, resume)."""

import json
import logging
import os
import signal

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from tensorboard.backend.event_processing import event_accumulator
from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

from cnnlab import parallel, rundir
from cnnlab.train import epoch_log as log_lib
from cnnlab.train import epochs
from cnnlab.train import evaluate as evaluate_lib
from cnnlab.train import step as step_lib
from conftest import smoke_config
from test_step_values import IMAGES, LABELS, tiny_state

VAL = {"loss": 0.5, "accuracy": 0.75}


def test_the_epoch_record_divides_the_loss_by_the_images_of_finite_steps_only():
  # 4 steps of 2 images (count: images), 2 of them non-finite (nonfinite: steps)
  train = {"loss": np.float32(10.0), "correct": np.float32(6.0), "count": np.float32(8.0),
           "nonfinite": np.float32(2.0)}
  assert epochs.epoch_record(3, 24, train, VAL, batch_size=2) == {
      "epoch": 3, "step": 24, "nonfinite_steps": 2, "train_loss": 2.5,
      "train_accuracy": 0.75, "val_loss": 0.5, "val_accuracy": 0.75}
  one_finite = dict(train, loss=np.float32(3.0), nonfinite=np.float32(3.0))
  assert epochs.epoch_record(3, 24, one_finite, VAL, batch_size=2)["train_loss"] == 1.5
  none_finite = dict(train, loss=np.float32(0.0), nonfinite=np.float32(4.0))
  assert epochs.epoch_record(1, 8, none_finite, VAL, 2)["train_loss"] == 0.0  # not 0 / 0
  # one seed's mean of float32 values is taken in float64, as the per-seed lists are
  val = {"loss": np.float32([0.1, 0.2]), "accuracy": np.float32([0.5, 0.5])}
  two = {k: np.float32([v, v]) for k, v in train.items()}
  assert epochs.epoch_record(1, 8, two, val, 2)["val_loss"] == float(
      np.mean(np.float64(np.float32([0.1, 0.2]))))


def test_the_epoch_record_of_two_seeds_gives_means_and_each_seed():
  train = {"loss": np.array([4.0, 6.0]), "correct": np.array([2.0, 3.0]),
           "count": np.array([4.0, 4.0]), "nonfinite": np.array([0.0, 1.0])}
  val = {"loss": np.array([0.25, 0.75]), "accuracy": np.array([0.5, 1.0])}
  record = epochs.epoch_record(2, 10, train, val, batch_size=1)
  assert record == {
      "epoch": 2, "step": 10, "nonfinite_steps": 1,
      "train_loss": 1.5, "train_loss_per_seed": [1.0, 2.0],
      "train_accuracy": 0.625, "train_accuracy_per_seed": [0.5, 0.75],
      "val_loss": 0.5, "val_loss_per_seed": [0.25, 0.75],
      "val_accuracy": 0.75, "val_accuracy_per_seed": [0.5, 1.0]}
  assert all(type(v) is float for v in record["train_loss_per_seed"])


@pytest.mark.parametrize("block, want", [
    (None, None), ({}, None), ({"crop_padding": 0, "flip": False, "erase_prob": 0.0}, None),
    ({"crop_padding": 2}, {"crop_padding": 2}), ({"flip": True}, {"flip": True}),
    ({"erase_prob": 0.5, "flip": False}, {"erase_prob": 0.5, "flip": False})])
def test_the_step_gets_the_augmentation_block_only_when_it_does_something(block, want):
  config = ml_collections.ConfigDict({"seed": 0})
  if block is not None:
    config.augment = ml_collections.ConfigDict(block)
  assert epochs._augment_config(config) == want


def test_the_host_step_is_a_python_int_of_the_shared_step():
  state = type("S", (), {"step": jnp.array([7, 7])})()
  assert epochs.host_step(state) == 7 and type(epochs.host_step(state)) is int


def test_the_stop_flag_notes_a_signal_and_restores_the_handlers():
  before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
  flag = epochs.StopFlag()
  try:
    # one process: the flag takes SIGTERM too (several: JAX's preemption service does)
    assert signal.getsignal(signal.SIGTERM) == signal.getsignal(signal.SIGINT) == flag._handle
    assert flag.signum is None and not flag.check(1)
    flag.raise_if_set()  # nothing noted: no error
    os.kill(os.getpid(), signal.SIGTERM)
    assert flag.signum == signal.SIGTERM and flag.check(2)
    with pytest.raises(SystemExit) as exit_:
      flag.raise_if_set()
    assert exit_.value.code == 143
    os.kill(os.getpid(), signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
      flag.raise_if_set()
  finally:
    flag.restore()
  assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def record(epoch, loss):
  return {"epoch": epoch, "step": 4 * epoch, "train_loss": loss, "train_accuracy": 0.5,
          "val_loss": loss + 1, "val_accuracy": 0.25}


def test_the_epoch_log_keeps_the_history_and_writes_each_epoch_everywhere(tmp_path):
  run = rundir.Run(tmp_path)
  with open(run.path(rundir.TIMINGS), "w") as f:
    f.writelines(json.dumps({"epoch": e, "images_per_s": 1.0}) + "\n" for e in (1, 2, 3))
  run.write_config(ml_collections.ConfigDict(
      {"seed": 3, "model": {"name": "m", "widths": [8, 16], "norm": None}}))
  lines = []
  with log_lib.logging_to(lines.append):
    log = log_lib.epoch_log(run, [record(1, 2.0), record(2, 1.5)])  # epoch 3 is replayed
    assert [t["epoch"] for t in run.timings()] == [1, 2]
    log.write(record(3, 1.25), 12345.67, 2.34567, True, 10)
    log.write(record(4, 1.5), 12345.67, 2.34567, False, 10)
    log.write_hparams({"test_accuracy": 0.7, "val_accuracy": 0.8, "epochs": 3})
    log.close()
  assert [r["epoch"] for r in run.history()] == [1, 2, 3, 4] and run.history()[2] == record(3, 1.25)
  with open(run.path(rundir.METRICS)) as f:  # keys sorted, as every line of the history
    assert f.read().splitlines()[::2] == [json.dumps(record(e, loss), sort_keys=True)
                                          for e, loss in ((1, 2.0), (3, 1.25))]
  assert run.timings()[2] == {"epoch": 3, "images_per_s": 12345.7, "epoch_time_s": 2.346}
  assert lines == ["epoch  3/10  train loss 1.2500 acc 0.5000 | val loss 2.2500 acc 0.2500 | "
                   "12,346 img/s 2.3 s  *best",
                   "epoch  4/10  train loss 1.5000 acc 0.5000 | val loss 2.5000 acc 0.2500 | "
                   "12,346 img/s 2.3 s"]
  events = event_accumulator.EventAccumulator(run.path(rundir.TENSORBOARD))
  events.Reload()
  scalar = lambda tag: [(e.step, e.value) for e in events.Scalars(tag)]
  assert scalar("train/loss") == [(3, 1.25), (4, 1.5)]
  assert scalar("val/loss") == [(3, 2.25), (4, 2.5)]
  assert scalar("train/accuracy") == [(3, 0.5), (4, 0.5)]
  assert scalar("val/accuracy") == [(3, 0.25), (4, 0.25)]
  assert scalar("perf/images_per_s") == [(e, pytest.approx(12345.67)) for e in (3, 4)]
  content = events.PluginTagToContent("hparams")  # the config, None fields left out
  start = HParamsPluginData.FromString(content["_hparams_/session_start_info"])
  assert {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
          for k, v in start.session_start_info.hparams.items()} == {
              "seed": 3, "model.name": "m", "model.widths": "[8, 16]"}
  end = HParamsPluginData.FromString(content["_hparams_/session_end_info"])
  assert end.session_end_info.status == 1  # STATUS_SUCCESS
  assert scalar("results/test_accuracy") == [(3, pytest.approx(0.7))]
  assert scalar("results/val_accuracy") == [(3, pytest.approx(0.8))]
  logger = logging.getLogger("cnnlab.train")
  assert not any(isinstance(h, log_lib._Sink) for h in logger.handlers) and logger.propagate


def test_a_process_that_does_not_write_the_run_writes_and_says_nothing(tmp_path):
  run = rundir.Run(tmp_path / "r", primary=False)
  log = log_lib.epoch_log(run, [])
  log.write(record(1, 1.0), images_per_s=1.0, epoch_time_s=1.0, best=False, num_epochs=1)
  log.write_hparams({})
  log.close()
  assert not os.path.exists(run.dir)
  with log_lib.logging_to(None):
    log_lib.logger.info("nowhere")  # a NullHandler: no "No handlers" warning, no output



# The epoch loop itself (make_job, run_epochs, _train_epoch, precompile_training) on
# test_step_values' tiny model: 18 training images in batches of 4 (4 steps an epoch, the
# last 2 images dropped), 8 evaluation images.
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


def test_two_seeds_draw_each_its_own_epoch_order():
  job = job_of(num_seeds=2)
  keys = jnp.stack([jax.random.PRNGKey(1), jax.random.PRNGKey(2)])
  order = job.batches.epoch_order(jnp.array([4, 4]), keys)
  assert job.num_seeds == 2 and order.shape == (2, 18)
  for i in range(2):
    np.testing.assert_array_equal(order[i], step_lib.epoch_permutation(keys[i], 1, 18))
