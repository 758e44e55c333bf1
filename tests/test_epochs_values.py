"""cnnlab.train.epochs' and epoch_log's parts around the loop, in-process: an epoch's metrics
line from its sums (one seed and two), the augmentation block the step gets, the stop flag,
what EpochLog writes (metrics.jsonl, timings.jsonl, TensorBoard, the log line). The loop
itself: test_epoch_loop_values.py."""

import json
import logging
import os
import signal

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator
from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

from cnnlab import rundir
from cnnlab.train import epoch_log as log_lib
from cnnlab.train import epochs

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
  one_image = dict(train, loss=np.float32(3.0), nonfinite=np.float32(7.0))  # 8 steps of 1
  assert epochs.epoch_record(3, 24, one_image, VAL, batch_size=1)["train_loss"] == 3.0
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
