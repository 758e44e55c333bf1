"""Where epoch metrics go: metrics.jsonl, timings.jsonl, TensorBoard events and the console.

metrics.jsonl holds only deterministic numbers (same config + seed -> same file); wall-clock
numbers go to timings.jsonl. On resume the files are rewritten from the checkpoint's history,
so an epoch that finished after the last checkpoint is never listed twice.
"""

import json
import os


class MetricWriter:

  def __init__(self, workdir, history):
    self.workdir = workdir
    self.metrics_path = os.path.join(workdir, "metrics.jsonl")
    self.timings_path = os.path.join(workdir, "timings.jsonl")
    with open(self.metrics_path, "w") as f:
      f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in history)
    self._keep_lines(self.timings_path, len(history))
    # Imported here: tensorboardX imports torch when it is installed (1.4 s of start-up).
    from tensorboardX import SummaryWriter
    self.tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

  @staticmethod
  def _keep_lines(path, n):
    lines = open(path).readlines()[:n] if os.path.exists(path) else []
    lines = [l for l in lines if l.endswith("\n")]  # a kill mid-write leaves half a line
    with open(path, "w") as f:
      f.writelines(lines)

  def write(self, record, images_per_s, epoch_time_s, best, num_epochs):
    with open(self.metrics_path, "a") as f:
      f.write(json.dumps(record, sort_keys=True) + "\n")
    with open(self.timings_path, "a") as f:
      f.write(json.dumps({"epoch": record["epoch"], "images_per_s": round(images_per_s, 1),
                          "epoch_time_s": round(epoch_time_s, 3)}) + "\n")
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
      self.tb.add_scalar(key.replace("_", "/", 1), record[key], record["epoch"])
    self.tb.add_scalar("perf/images_per_s", images_per_s, record["epoch"])
    self.tb.flush()
    print(f"epoch {record['epoch']:>2}/{num_epochs}  train loss {record['train_loss']:.4f} "
          f"acc {record['train_accuracy']:.4f} | val loss {record['val_loss']:.4f} "
          f"acc {record['val_accuracy']:.4f} | {images_per_s:,.0f} img/s "
          f"{epoch_time_s:.1f} s{'  *best' if best else ''}", flush=True)

  def close(self):
    self.tb.close()
