"""Where a run's finished epochs go: metrics.jsonl, timings.jsonl, TensorBoard and the log.

`logger` is what a training says (epochs, resume, results): train_and_evaluate sends it to
its `log` on the primary process (`logging_to`) and nowhere on the others.
"""

import contextlib
import json
import logging

from cnnlab.rundir import METRICS, TENSORBOARD, TIMINGS, flatten

logger = logging.getLogger("cnnlab.train")


@contextlib.contextmanager
def logging_to(sink):
  """Send `logger`'s lines to `sink` (a callable taking one line; None: nowhere) in the block."""
  handler = _Sink(sink) if sink else logging.NullHandler()
  saved = logger.propagate, logger.level
  logger.addHandler(handler)
  logger.propagate = False
  logger.setLevel(logging.INFO)
  try:
    yield
  finally:
    logger.removeHandler(handler)
    logger.propagate = saved[0]
    logger.setLevel(saved[1])


class _Sink(logging.Handler):
  def __init__(self, sink):
    super().__init__()
    self.sink = sink

  def emit(self, record):
    self.sink(record.getMessage())


def epoch_log(run, history):
  """An EpochLog whose files hold exactly `history` (the epochs the checkpoint has); on a
  process that does not write the run directory (run.primary False), one that writes nothing."""
  return EpochLog(run, history) if run.primary else SilentEpochLog()


class EpochLog:
  """Where finished epochs go: metrics.jsonl, timings.jsonl, TensorBoard and `logger`.

  metrics.jsonl is the run's history: a resume truncates it (and timings.jsonl) to the
  epochs of the restored checkpoint, so an epoch finished after the last save is replayed,
  never listed twice.
  """

  def __init__(self, run, history):
    self.run = run
    keep = {r["epoch"] for r in history}
    with open(run.path(METRICS), "w") as f:
      f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in history)
    timings = [t for t in run.timings() if t["epoch"] in keep]
    with open(run.path(TIMINGS), "w") as f:
      f.writelines(json.dumps(t) + "\n" for t in timings)
    # Imported here: tensorboardX imports torch when it is installed (1.4 s of start-up).
    from tensorboardX import SummaryWriter
    self.tb = SummaryWriter(run.path(TENSORBOARD))

  def write(self, record, images_per_s, epoch_time_s, best, num_epochs):
    with open(self.run.path(METRICS), "a") as f:
      f.write(json.dumps(record, sort_keys=True) + "\n")
    with open(self.run.path(TIMINGS), "a") as f:
      f.write(json.dumps({"epoch": record["epoch"], "images_per_s": round(images_per_s, 1),
                          "epoch_time_s": round(epoch_time_s, 3)}) + "\n")
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
      self.tb.add_scalar(key.replace("_", "/", 1), record[key], record["epoch"])
    self.tb.add_scalar("perf/images_per_s", images_per_s, record["epoch"])
    self.tb.flush()
    logger.info(f"epoch {record['epoch']:>2}/{num_epochs}  train loss "
                f"{record['train_loss']:.4f} acc {record['train_accuracy']:.4f} | val loss "
                f"{record['val_loss']:.4f} acc {record['val_accuracy']:.4f} | "
                f"{images_per_s:,.0f} img/s {epoch_time_s:.1f} s{'  *best' if best else ''}")

  def write_hparams(self, results):
    """Once, at the end: the run's config and results for TensorBoard's HParams tab, so
    `tensorboard --logdir runs` compares every run and sweep point: session start/end
    records and the results as scalars `results/...`. No experiment record (add_hparams
    writes one per run): without one, TensorBoard builds the table from every run's."""
    from tensorboardX.summary import hparams as hparams_summary
    hparams = {k: v if isinstance(v, (bool, int, float, str)) else json.dumps(v)
               for k, v in flatten(self.run.read_config_json()).items() if v is not None}
    metrics = {f"results/{k}": results[k] for k in ("test_accuracy", "val_accuracy")}
    _, start, end = hparams_summary(hparams, metrics)
    self.tb.file_writer.add_summary(start)
    for tag, value in metrics.items():
      self.tb.add_scalar(tag, value, results["epochs"])
    self.tb.file_writer.add_summary(end)
    self.tb.flush()

  def close(self):
    self.tb.close()


class SilentEpochLog:
  """The epoch log of a non-primary process: it writes and prints nothing."""

  def write(self, record, **timings):
    pass

  def write_hparams(self, results):
    pass

  def close(self):
    pass
