"""Training/eval throughput of a config's model, interleaved with PyTorch (eager and
torch.compile) in one process.

This machine's CPU is shared and noisy, so every number is taken in rounds that alternate
cnnlab, torch eager, torch.compile (and the matmul peak) at each batch size; ratios compare the
same rounds.
cnnlab's side is the program `train` runs (train.epochs.make_job's jitted step: the batch
gathered on the device, augmentation, the step, the epoch sums) over fixed random uint8 images
on the device: throughput does not depend on content.
"""

import json
import os
import resource
import statistics
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from cnnlab import data, parallel
from cnnlab.bench.child import run_python
from cnnlab.bench.record import machine_info
from cnnlab.errors import UserError
from cnnlab.train import epochs
from cnnlab.train import state as state_lib
from cnnlab.train import step as step_lib
from cnnlab.train.evaluate import evaluate

STEPS = 16  # distinct batches the timed steps cycle through, as an epoch's would


def baseline(against):
  """--against resolved to torch or none: auto takes PyTorch when it imports, else notes it."""
  if against == "none":
    return "none"
  try:
    import torch  # noqa: F401
    return "torch"
  except ImportError:
    if against == "torch":
      raise UserError("--against=torch needs PyTorch (pip install -e '.[bench]', or torch's "
                      "CPU build); or pass --against=none") from None
  print("cnnlab: note: PyTorch is not installed, so cnnlab is measured alone "
        "(pip install -e '.[bench]' adds the comparison)", file=sys.stderr, flush=True)
  return "none"


def matmul_gflops(n=1024, steps=5):
  """Achieved GFLOP/s of one f32 n x n matmul under jit: the machine's practical peak now."""
  a = jnp.asarray(np.random.RandomState(0).randn(n, n), jnp.float32)
  f = jax.jit(lambda a, b: a @ b)
  f(a, a).block_until_ready()
  start = time.perf_counter()
  for _ in range(steps):
    out = f(a, a)
  out.block_until_ready()
  return 2 * n ** 3 * steps / (time.perf_counter() - start) / 1e9


class JaxTrainer:
  """A config's training program at `batch_size`, as `train` builds it (train.epochs.make_job,
  train.state.build), over STEPS batches of fixed random images on the device."""

  def __init__(self, config, batch_size, seed=0):
    config = config.copy_and_resolve_references()
    config.batch_size = config.eval_batch_size = batch_size
    self.batch_size = batch_size
    shape, classes = data.image_shape(config), data.num_classes(config)
    rng = np.random.RandomState(seed)
    images = rng.randint(0, 256, (STEPS * batch_size, *shape)).astype(np.uint8)
    labels = rng.randint(0, classes, STEPS * batch_size).astype(np.int32)
    self.job = epochs.make_job(config, parallel.make_mesh(config.num_devices), (images, labels),
                               (images[:batch_size], labels[:batch_size]))
    _, state = state_lib.build(config, self.job.steps_per_epoch, images)
    self.state = jax.device_put(state, self.job.replicated)
    self.sums = jax.device_put(step_lib.zero_sums(self.job.num_seeds), self.job.replicated)
    self.data = next(self.job.batches.epoch(self.state, 0))  # the resident mode's arguments

  def _step(self):
    self.state, self.sums = self.job.train_batch(self.state, self.sums, *self.data)

  def compile_seconds(self):
    """Wall time of the first train step: trace + compile + run."""
    start = time.perf_counter()
    self._step()
    jax.block_until_ready(self.sums)
    return time.perf_counter() - start

  def flops_per_image(self):
    """XLA's own FLOP count of one compiled train step, per image (None if not reported)."""
    try:
      lowered = self.job.train_batch.lower(self.state, self.sums, *self.data)
      cost = lowered.compile().cost_analysis()
      cost = cost[0] if isinstance(cost, (list, tuple)) else cost
      return float(cost["flops"]) / self.batch_size
    except Exception:  # cost analysis is best-effort and backend-dependent
      return None

  def run(self, num_steps):
    start = time.perf_counter()
    for _ in range(num_steps):
      self._step()
    jax.block_until_ready(self.sums)
    return num_steps * self.batch_size / (time.perf_counter() - start)

  def eval_images_per_s(self, num_batches):
    """Images/s of cnnlab's evaluation (train.evaluate) over `num_batches` batches."""
    evaluate(self.state, self.job.eval_batches, self.job.num_seeds)  # compile
    start = time.perf_counter()
    evaluate(self.state, self.job.eval_batches * num_batches, self.job.num_seeds)
    return num_batches * self.batch_size / (time.perf_counter() - start)


def compile_seconds(config, batch_size):
  """First-step wall time in fresh processes: {"cold": empty cache, "cached": warm cache}.

  Two child processes share one new persistent-cache directory: the first compiles from
  scratch and fills it, the second finds its programs there (a user's rerun). Children, because
  the cache cannot be switched on and off cleanly inside one process. Each also reports JAX's
  own count of persistent-cache hits and misses, so "the rerun compiled nothing" is a fact,
  not an inference from timings.
  """
  code = ("import json, sys, jax, ml_collections; from cnnlab.bench import throughput; "
          "n = {'hits': 0, 'misses': 0}; "
          "jax.monitoring.register_event_listener(lambda e, **k: [n.__setitem__(w, n[w] + 1) "
          "for w in ('hits', 'misses') if e == '/jax/compilation_cache/cache_' + w]); "
          "c = ml_collections.ConfigDict(json.loads(sys.argv[1])); "
          "s = throughput.JaxTrainer(c, int(sys.argv[2])).compile_seconds(); "
          "print(json.dumps(dict(n, seconds=s)))")
  runs = []
  with tempfile.TemporaryDirectory() as cache:
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=cache,
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    for _ in range(2):
      out = run_python(["-c", code, config.to_json(), str(batch_size)], env)
      runs.append(json.loads(out.strip().splitlines()[-1]))
  return {"cold": runs[0]["seconds"], "cached": runs[1]["seconds"],
          "cache_events": {"cold": {k: runs[0][k] for k in ("hits", "misses")},
                           "cached": {k: runs[1][k] for k in ("hits", "misses")}}}


def stats(values):
  return {"min": min(values), "median": statistics.median(values), "max": max(values),
          "all": [round(v, 1) for v in values]}


def compare(config, batch_sizes=(32, 128), against="torch", repeats=5, images_per_round=2048,
            log=print):
  """Interleaved rounds of cnnlab vs `against` at each batch size; returns the JSON record."""
  info = machine_info()
  compiles = {bs: compile_seconds(config, bs) for bs in batch_sizes}
  runners = {bs: _runners(config, bs, against, compiles[bs]) for bs in batch_sizes}
  samples = {bs: {k: [] for k in ("jax", "torch", "compile", "ratio", "ratio_compile", "peak")}
             for bs in batch_sizes}
  for bs in batch_sizes:
    samples[bs].update(torch_by_threads={}, compile_by_threads={})
  for r in range(repeats):
    for bs, (jax_side, torch_side, _) in runners.items():
      s = samples[bs]
      _round(jax_side, torch_side, s, max(3, images_per_round // bs))
      log(f"round {r + 1}/{repeats} batch {bs}: cnnlab {s['jax'][-1]:.0f} img/s"
          + (f", torch eager {s['torch'][-1]:.0f} img/s, ratio {s['ratio'][-1]:.2f}"
             if torch_side else "")
          + (f", torch.compile {s['compile'][-1]:.0f} img/s, ratio {s['ratio_compile'][-1]:.2f}"
             if s["compile"] else ""))
  records = [_record(rec, samples[bs], jax_side, torch_side, max(3, images_per_round // bs))
             for bs, (jax_side, torch_side, rec) in runners.items()]
  info["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  return {"machine": info, "against": against, "repeats": repeats, "results": records}


def _runners(config, bs, against, compiles):
  """(cnnlab trainer, torch_baseline.TorchSide or None, the batch size's record), warmed up."""
  jax_side = JaxTrainer(config, bs)
  jax_side.compile_seconds()  # the first step (compile); timed in fresh processes
  rec = {"batch_size": bs, "compile_s": compiles["cold"], "compile_s_cached": compiles["cached"],
         "compile_cache_events": compiles["cache_events"],
         "flops_per_image": jax_side.flops_per_image()}
  jax_side.run(5)
  torch_side = None
  if against == "torch":
    # torch at every core (the idiomatic setting) and at 1 thread; ratios are taken against
    # whichever was faster in that round. torch.compile's first step is its compile time,
    # recorded apart from its throughput (warm-up excluded, as for eager).
    from cnnlab.bench.torch_baseline import TorchSide
    torch_side = TorchSide(bs)
    rec["torch_compile_s"] = torch_side.compile_s.get(torch_side.cores)  # the first: cold
    rec["torch_compile_s_by_threads"] = {str(t): s for t, s in torch_side.compile_s.items()}
    rec["torch_compile_error"] = torch_side.compile_error
  return jax_side, torch_side, rec


def _round(jax_side, torch_side, s, num_steps):
  """One round at one batch size: the matmul peak, cnnlab, torch eager at each thread count,
  torch.compile."""
  s["peak"].append(matmul_gflops())
  s["jax"].append(jax_side.run(num_steps))
  if torch_side is None:
    return
  for kind, rates in zip(("torch", "compile"), torch_side.round(num_steps)):
    if rates is None:  # torch.compile failed
      continue
    for t, rate in rates.items():
      s[f"{kind}_by_threads"].setdefault(t, []).append(rate)
    s[kind].append(max(rates.values()))
    s["ratio" if kind == "torch" else "ratio_compile"].append(s["jax"][-1] / s[kind][-1])


def _record(rec, s, jax_side, torch_side, num_steps):
  """The batch size's JSON record from its rounds' samples (plus eval throughput)."""
  rec["train_images_per_s"] = stats(s["jax"])
  rec["eval_images_per_s"] = jax_side.eval_images_per_s(num_steps)
  rec["matmul_peak_gflops"] = stats(s["peak"])
  if rec["flops_per_image"]:
    # Per round: achieved / peak measured right before it, so both saw the same load.
    fracs = [j * rec["flops_per_image"] / 1e9 / p for j, p in zip(s["jax"], s["peak"])]
    rec["train_gflops"] = stats([j * rec["flops_per_image"] / 1e9 for j in s["jax"]])
    rec["fraction_of_matmul_peak"] = stats(fracs)
  if torch_side is not None:
    rec["torch_train_images_per_s"] = stats(s["torch"])
    rec["torch_train_images_per_s_by_threads"] = {
        str(t): stats(v) for t, v in s["torch_by_threads"].items()}
    rec["torch_eval_images_per_s"] = torch_side.eval_images_per_s(num_steps)
    rec["ratio_vs_torch"] = stats(s["ratio"])
    if s["compile"]:
      rec["torch_compile_train_images_per_s"] = stats(s["compile"])
      rec["torch_compile_train_images_per_s_by_threads"] = {
          str(t): stats(v) for t, v in s["compile_by_threads"].items()}
      rec["ratio_vs_torch_compile"] = stats(s["ratio_compile"])
  return rec


def _pair(s, fmt):
  return f"{s['min']:{fmt}} / {s['median']:{fmt}}" if s else "-"


def format_table(result):
  """One row per batch size (min / median over rounds), then a line per torch.compile failure."""
  head = ("batch", "cnnlab img/s", "eager img/s", "compile img/s", "cnnlab/eager",
          "cnnlab/compile", "peak frac", "cnnlab compile s", "torch.compile s")
  rows = [head, ("", "min / med", "min / med", "min / med", "min / med", "min / med", "med",
                 "cold / cached", "first step")]
  errors = {}
  for rec in result["results"]:
    g = rec.get
    frac = g("fraction_of_matmul_peak", {}).get("median")
    rows.append((str(rec["batch_size"]), _pair(g("train_images_per_s"), ".0f"),
                 _pair(g("torch_train_images_per_s"), ".0f"),
                 _pair(g("torch_compile_train_images_per_s"), ".0f"),
                 _pair(g("ratio_vs_torch"), ".2f"), _pair(g("ratio_vs_torch_compile"), ".2f"),
                 f"{frac:.2f}" if frac else "-",
                 f"{rec['compile_s']:.1f} / {rec['compile_s_cached']:.1f}",
                 f"{g('torch_compile_s'):.1f}" if g("torch_compile_s") is not None else "-"))
    if g("torch_compile_error"):
      errors.setdefault(rec["torch_compile_error"], []).append(str(rec["batch_size"]))
  widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
  lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in rows]
  lines += [f"torch.compile failed at batch {', '.join(b)} (eager torch measured alone): {e}"
            for e, b in errors.items()]
  return "\n".join(lines)
