"""Training/eval throughput of a config's model, interleaved with PyTorch eager in one process.

This machine's CPU is shared and noisy, so every number is taken in rounds that alternate
cnnlab and torch (and the matmul peak) at each batch size; ratios compare the same rounds.
Batches are fixed random uint8 images on the device: throughput does not depend on content.
"""

import json
import os
import resource
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from cnnlab import data
from cnnlab.compilation import compile_options
from cnnlab.bench.child import run_python
from cnnlab.bench.record import machine_info
from cnnlab.train import state as state_lib
from cnnlab.train import step as step_lib
from cnnlab.train.evaluate import evaluate


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
  """A config's model, optimizer and jitted train/eval steps on one fixed device batch."""

  def __init__(self, config, batch_size, seed=0):
    self.batch_size = batch_size
    shape, classes = data.image_shape(config.dataset), data.num_classes(config.dataset)
    tx = state_lib.make_optimizer(config.optimizer, total_steps=10_000)
    self.state = state_lib.create_train_state(state_lib.model_of(config), tx,
                                              jax.random.PRNGKey(seed), shape)
    rng = np.random.RandomState(seed)
    self.batch = {"image": jnp.asarray(rng.randint(0, 256, (batch_size, *shape)), jnp.uint8),
                  "label": jnp.asarray(rng.randint(0, classes, batch_size), jnp.int32)}
    self.eval_batch = dict(self.batch, mask=jnp.ones(batch_size, bool))
    self.train_step = jax.jit(step_lib.train_step, donate_argnums=0,
                              compiler_options=compile_options())

  def compile_seconds(self):
    """Wall time of the first train step: trace + compile + run."""
    start = time.perf_counter()
    self.state, metrics = self.train_step(self.state, self.batch)
    jax.block_until_ready(metrics)
    return time.perf_counter() - start

  def flops_per_image(self):
    """XLA's own FLOP count of one compiled train step, per image (None if not reported)."""
    try:
      cost = self.train_step.lower(self.state, self.batch).compile().cost_analysis()
      cost = cost[0] if isinstance(cost, (list, tuple)) else cost
      return float(cost["flops"]) / self.batch_size
    except Exception:  # cost analysis is best-effort and backend-dependent
      return None

  def run(self, steps_):
    start = time.perf_counter()
    for _ in range(steps_):
      self.state, metrics = self.train_step(self.state, self.batch)
    jax.block_until_ready(metrics)
    return steps_ * self.batch_size / (time.perf_counter() - start)

  def eval_images_per_s(self, steps_):
    """Images/s of cnnlab's evaluation (train.evaluate) over `steps_` batches."""
    evaluate(self.state, [self.eval_batch])  # compile
    start = time.perf_counter()
    evaluate(self.state, [self.eval_batch] * steps_)
    return steps_ * self.batch_size / (time.perf_counter() - start)


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


def _stats(values):
  return {"min": min(values), "median": statistics.median(values), "max": max(values),
          "all": [round(v, 1) for v in values]}


def compare(config, batch_sizes=(32, 128), against="torch", repeats=5, images_per_round=2048,
            log=print):
  """Interleaved rounds of cnnlab vs `against` at each batch size; returns the JSON record."""
  info = machine_info()
  compiles = {bs: compile_seconds(config, bs) for bs in batch_sizes}
  runners = {bs: _runners(config, bs, against, compiles[bs]) for bs in batch_sizes}
  samples = {bs: {"jax": [], "torch": [], "ratio": [], "peak": [], "torch_by_threads": {}}
             for bs in batch_sizes}
  for r in range(repeats):
    for bs, (jt, tt, _) in runners.items():
      s = samples[bs]
      _round(jt, tt, s, max(3, images_per_round // bs))
      log(f"round {r + 1}/{repeats} batch {bs}: cnnlab {s['jax'][-1]:.0f} img/s"
          + (f", torch {s['torch'][-1]:.0f} img/s, ratio {s['ratio'][-1]:.2f}" if tt else ""))
  records = [_record(rec, samples[bs], jt, tt, max(3, images_per_round // bs))
             for bs, (jt, tt, rec) in runners.items()]
  info["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  return {"machine": info, "against": against, "repeats": repeats, "results": records}


def _runners(config, bs, against, compiles):
  """(cnnlab trainer, {threads: torch trainer} or None, the batch size's record), warmed up."""
  jt = JaxTrainer(config, bs)
  jt.compile_seconds()  # the first step (compile); timed in fresh processes
  rec = {"batch_size": bs, "compile_s": compiles["cold"], "compile_s_cached": compiles["cached"],
         "compile_cache_events": compiles["cache_events"], "flops_per_image": jt.flops_per_image()}
  jt.run(5)
  tt = None
  if against == "torch":
    # torch at every core (the idiomatic setting) and at 1 thread: on a loaded machine
    # OpenMP's spinning threads can make the former several times slower; the ratio is
    # taken against whichever torch was faster in that round.
    from cnnlab.bench.torch_baseline import TorchTrainer
    tt = {t: TorchTrainer(bs, threads=t) for t in sorted({os.cpu_count(), 1}, reverse=True)}
    for trainer in tt.values():
      trainer.run(5)
  return jt, tt, rec


def _round(jt, tt, s, steps_):
  """One round at one batch size: the matmul peak, cnnlab, then torch at each thread count."""
  s["peak"].append(matmul_gflops())
  s["jax"].append(jt.run(steps_))
  if tt is None:
    return
  rates = {}
  for t, trainer in tt.items():
    trainer.torch.set_num_threads(t)
    rates[t] = trainer.run(steps_)
    s["torch_by_threads"].setdefault(t, []).append(rates[t])
  s["torch"].append(max(rates.values()))
  s["ratio"].append(s["jax"][-1] / s["torch"][-1])


def _record(rec, s, jt, tt, steps_):
  """The batch size's JSON record from its rounds' samples (plus eval throughput)."""
  rec["train_images_per_s"] = _stats(s["jax"])
  rec["eval_images_per_s"] = jt.eval_images_per_s(steps_)
  rec["matmul_peak_gflops"] = _stats(s["peak"])
  if rec["flops_per_image"]:
    # Per round: achieved / peak measured right before it, so both saw the same load.
    fracs = [j * rec["flops_per_image"] / 1e9 / p for j, p in zip(s["jax"], s["peak"])]
    rec["train_gflops"] = _stats([j * rec["flops_per_image"] / 1e9 for j in s["jax"]])
    rec["fraction_of_matmul_peak"] = _stats(fracs)
  if tt is not None:
    rec["torch_train_images_per_s"] = _stats(s["torch"])
    rec["torch_train_images_per_s_by_threads"] = {
        str(t): _stats(v) for t, v in s["torch_by_threads"].items()}
    first = next(iter(tt))
    tt[first].torch.set_num_threads(first)
    rec["torch_eval_images_per_s"] = tt[first].eval_images_per_s(steps_)
    rec["ratio_vs_torch"] = _stats(s["ratio"])
  return rec


def format_table(result):
  lines = [f"{'batch':>5} {'cnnlab img/s (min/med)':>24} {'torch img/s (min/med)':>23} "
           f"{'ratio (min/med)':>16} {'peak frac (med)':>16} {'compile s (cold/cached)':>24}"]
  for rec in result["results"]:
    j, t, r = (rec.get(k) for k in ("train_images_per_s", "torch_train_images_per_s",
                                     "ratio_vs_torch"))
    frac = rec.get("fraction_of_matmul_peak", {}).get("median")
    lines.append(f"{rec['batch_size']:>5} {j['min']:>11.0f} / {j['median']:<10.0f} "
                 + (f"{t['min']:>10.0f} / {t['median']:<10.0f} {r['min']:>6.2f} / {r['median']:<7.2f}"
                    if t else f"{'-':>23} {'-':>16}")
                 + (f" {frac:>15.2f}" if frac else f" {'-':>15}")
                 + f" {rec['compile_s']:>13.1f} / {rec['compile_s_cached']:<.1f}")
  return "\n".join(lines)
