"""The input benchmarks: training img/s in the stream vs the resident input mode, and the decode
img/s of a JPEG folder per core.

  ./launch.sh bench --input_modes=resident,stream --batch_sizes=32,128   (the config's data:
                                                                            Fashion-MNIST)
  ./launch.sh bench --decode=generated      (or --decode=PATH, a folder of class subfolders)

modes(): the config's training program (train.epochs.make_job, the state of
train.state.build_fresh), one per mode and batch size, each fed by its mode as `train` feeds it:
resident gathers each batch on the device, stream reads it with Grain and places it ahead.
Rounds alternate the modes (in turn first) at each batch size, so a noisy shared CPU loads
them alike, and the ratio is taken per round. Each trainer's epoch lives across its rounds:
an epoch's start (the permutation read back, Grain started) counts in the round it falls in.

decode(): the folder's training split through cnnlab's folder source (transform.read: the
resize + centre crop of `train`), read in this process (one core), then through the stream
mode's Grain reader with its worker processes (img/s per worker = per core while the workers
do not outnumber the cores). Grain is timed over a second pass of the files, so its start-up
and the batches decoded ahead during it do not count.
"""

import os
import tempfile
import time

import jax
import numpy as np

from cnnlab import data, parallel
from cnnlab.bench.record import machine_info
from cnnlab.bench.throughput import stats
from cnnlab.errors import UserError
from cnnlab.input import sources, stream
from cnnlab.train import epochs
from cnnlab.train import state as state_lib
from cnnlab.train import step as step_lib

MODES = ("resident", "stream")
IMAGES_PER_ROUND = 8192
# --decode=generated: JPEGs drawn with PIL (gradients, shapes, noise; not photographs) of
# photo-like sizes (sides 320-512 px, like a phone picture scaled down or ImageNet's).
GENERATED = {"images": 1000, "classes": 10, "sides": (320, 512), "quality": 90}
DECODE_SIDE = 64  # the decoded side when config.image_size is 0 (a folder's sizes vary)


def check_modes(names):
  """--input_modes as a tuple of distinct MODES."""
  if not names or any(n not in MODES for n in names) or len(set(names)) != len(names):
    raise UserError(f"--input_modes={','.join(names)} must name distinct modes of "
                    f"{', '.join(MODES)}, e.g. --input_modes=resident,stream")
  return tuple(names)


class ModeTrainer:
  """`train`'s program at `batch_size` in input mode `mode` on the config's training data."""

  def __init__(self, config, mode, batch_size, splits):
    config = config.copy_and_resolve_references()
    config.input, config.batch_size = mode, batch_size
    self.batch_size, train = batch_size, splits["train"]
    evaluation = tuple(a[:batch_size] for a in splits["validation"])  # unused: small
    self.job = epochs.make_job(config, parallel.make_mesh(config.num_devices), train, evaluation)
    _, state = state_lib.build_fresh(config, self.job.steps_per_epoch, train)
    self.state, self.sums = parallel.put((state, step_lib.zero_sums()), self.job.replicated)
    self.data = self.job.batches.epoch(self.state, 0)

  def run(self, steps):
    """Images/s of `steps` training steps."""
    jax.block_until_ready(self.sums)
    start = time.perf_counter()
    for _ in range(steps):
      self.state, self.sums = self.job.train_batch(self.state, self.sums, *self._next())
    jax.block_until_ready(self.sums)
    return steps * self.batch_size / (time.perf_counter() - start)

  def _next(self):
    try:
      return next(self.data)
    except StopIteration:  # the epoch is over: the next starts as `train` starts it
      self.data.close()
      step = epochs.host_step(self.state) % self.job.steps_per_epoch
      self.data = self.job.batches.epoch(self.state, step)
      return next(self.data)

  def close(self):
    self.data.close()


def modes(config, batch_sizes, repeats=5, wanted=MODES, images_per_round=IMAGES_PER_ROUND,
          log=print):
  """Interleaved rounds of training in each mode of `wanted` at each batch size: the record."""
  splits = {m: data.train_validation_inputs(_with(config, input=m)) for m in wanted}
  trainers = {bs: {m: ModeTrainer(config, m, bs, splits[m]) for m in wanted}
              for bs in batch_sizes}
  samples = {bs: {m: [] for m in wanted} for bs in batch_sizes}
  try:
    for each in trainers.values():
      for trainer in each.values():
        trainer.run(3)  # compiled, the stream's reader started
    for r in range(repeats):
      for bs, each in trainers.items():
        steps = max(3, images_per_round // bs)
        for m in wanted[r % len(wanted):] + wanted[:r % len(wanted)]:
          samples[bs][m].append(each[m].run(steps))
        log(f"round {r + 1}/{repeats} batch {bs}: " + ", ".join(
            f"{m} {samples[bs][m][-1]:.0f} img/s" for m in wanted))
  finally:
    for each in trainers.values():
      for trainer in each.values():
        trainer.close()
  return {"bench": "input_modes", "dataset": data.info(config).name,
          "train_examples": _examples(next(iter(splits.values()))["train"]),
          "modes": list(wanted),
          "repeats": repeats, "images_per_round": images_per_round,
          "results": [_modes_record(bs, samples[bs], trainers[bs], images_per_round)
                      for bs in batch_sizes], "machine": machine_info()}


def _modes_record(bs, samples, trainers, images_per_round):
  rec = {"batch_size": bs, "steps_per_round": max(3, images_per_round // bs)}
  for m, values in samples.items():
    rec[f"{m}_images_per_s"] = stats(values)
    rec[f"{m}_feed"] = type(trainers[m].job.batches).__name__
  if "stream" in trainers:
    rec["stream_workers"] = getattr(trainers["stream"].job.batches, "workers", None)
  if set(MODES) <= set(samples):
    rec["stream_over_resident"] = stats([s / r for s, r in zip(samples["stream"],
                                                                samples["resident"])])
  return rec


def _with(config, **fields):
  config = config.copy_and_resolve_references()
  config.update(fields)
  return config


def _examples(train):
  return len(train[0] if isinstance(train, tuple) else train)


def generate_jpegs(root, images, classes, sides, quality, seed=0):
  """root/cCC/NNNN.jpg: `images` JPEGs over `classes` subfolders, each of random sides in
  `sides`: a colour gradient, a few filled shapes and pixel noise (not photographs)."""
  from PIL import Image, ImageDraw
  rng = np.random.default_rng(seed)
  for i in range(images):
    w, h = (int(s) for s in rng.integers(sides[0], sides[1] + 1, 2))
    ramp = np.linspace(0, 1, w)[None, :, None] * rng.uniform(0, 255, 3)
    pixels = ramp + np.linspace(0, 1, h)[:, None, None] * rng.uniform(0, 255, 3)
    pixels = np.clip(pixels / 2 + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    im = Image.fromarray(pixels)
    draw = ImageDraw.Draw(im)
    for _ in range(3):
      x, y = sorted(rng.integers(0, w, 2)), sorted(rng.integers(0, h, 2))
      draw.ellipse([x[0], y[0], x[1], y[1]], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    folder = os.path.join(root, f"c{i % classes:02d}")
    os.makedirs(folder, exist_ok=True)
    im.save(os.path.join(folder, f"{i:04d}.jpg"), quality=quality)
  return root


def decode(path, config, repeats=3, log=print, generate=None):
  """Decode img/s of folder `path` ("generated": GENERATED, or `generate`, made in a temporary
  directory) in this process and through Grain's workers (config.input_workers, 0: one a
  core up to 8), batches of config.batch_size (at most a quarter of the folder): the record."""
  with tempfile.TemporaryDirectory(prefix="cnnlab-decode-") as tmp:
    made = (generate or GENERATED) if path == "generated" else None
    root = generate_jpegs(tmp, **made) if made else path
    folder = _with(config, dataset=f"folder:{root}", image_size=config.image_size or DECODE_SIDE)
    source = sources.source(folder, "train")
    workers = stream.workers_for(source, config.get("input_workers", 0))
    batch = max(1, min(config.batch_size, len(source) // 4))  # a pass holds several batches
    one, pooled = [], []
    for r in range(repeats):
      one.append(_in_process(source))
      pooled.append(_through_grain(source, batch, workers))
      log(f"round {r + 1}/{repeats}: one process {one[-1]:.0f} img/s, {workers} worker "
          f"process(es) {pooled[-1]:.0f} img/s ({pooled[-1] / workers:.0f} per worker)")
  return {"bench": "decode", "folder": "generated" if made else os.path.abspath(path),
          "generated": made and {**made, "note": "JPEGs drawn with PIL in a temporary "
                                 "directory (gradients, shapes, noise): not photographs"},
          "images": len(source), "image_size": folder.image_size, "shape": list(source.shape),
          "repeats": repeats, "batch_size": batch, "workers": workers,
          "cores": os.cpu_count(), "one_process_images_per_s": stats(one),
          "workers_images_per_s": stats(pooled),
          "per_worker_images_per_s": stats([p / workers for p in pooled]),
          "machine": machine_info()}


def _in_process(source):
  start = time.perf_counter()
  for i in range(len(source)):
    source[i]
  return len(source) / (time.perf_counter() - start)


def _through_grain(source, batch, workers):
  """Images/s of Grain's reader over a second pass of `source` (the first warms it up)."""
  n = len(source)
  iterator = iter(stream.reader(source, np.tile(np.arange(n), 2), batch, workers))
  try:
    seen, start = 0, None
    for images, _ in iterator:
      seen += len(images)
      if start is None and seen >= n:
        start, counted = time.perf_counter(), seen
    return (seen - counted) / (time.perf_counter() - start)
  finally:
    iterator.close()


def format_table(result):
  """The record in a few lines: per batch size (input_modes), or the decode rates."""
  med = lambda s: f"{s['median']:.0f}"
  if result["bench"] == "decode":
    return (f"decode {result['images']} images of {result['folder']} to "
            f"{'x'.join(map(str, result['shape']))}: one process "
            f"{med(result['one_process_images_per_s'])} img/s; {result['workers']} worker "
            f"process(es) {med(result['workers_images_per_s'])} img/s, "
            f"{med(result['per_worker_images_per_s'])} per worker (medians)")
  lines = [f"{result['dataset']}, {result['train_examples']} training images (medians):"]
  for rec in result["results"]:
    parts = [f"{m} {med(rec[f'{m}_images_per_s'])} img/s" for m in result["modes"]]
    if "stream_over_resident" in rec:
      parts.append(f"stream/resident {rec['stream_over_resident']['median']:.2f}")
    lines.append(f"batch {rec['batch_size']}: " + ", ".join(parts))
  return "\n".join(lines)
