"""Seeds in one vmapped program vs one fresh process per seed: wall time and per-seed results."""

import os
import tempfile
import time

from cnnlab import rundir
from cnnlab.bench.child import run_python


def _train_in_child(config, workdir, cache_dir):
  """train_and_evaluate in a fresh process (start-up, data loading and compilation count)."""
  code = ("import json, sys, ml_collections; from cnnlab import compilation; compilation.use_persistent_cache(); "
          "from cnnlab.train import train_and_evaluate; "
          "train_and_evaluate(ml_collections.ConfigDict(json.loads(sys.argv[1])), "
          "sys.argv[2], log=lambda *a: None)")
  start = time.perf_counter()
  run_python(["-c", code, config.to_json(), workdir],
             dict(os.environ, CNNLAB_JAX_CACHE=cache_dir))
  wall = time.perf_counter() - start
  return wall, rundir.Run(workdir).read_results()


def seeds_vs_sequential(config, num_seeds, log=print):
  """Wall time of `num_seeds` seeds as one vmapped program vs one fresh process per seed.

  Each way starts from an empty persistent compilation cache, as a user's first sweep
  would: the vmapped run compiles once; the sequential runs compile once and then hit the
  cache. Per-seed test accuracies are returned for both, to show they are the same runs.
  """
  with tempfile.TemporaryDirectory() as root:
    together_cfg = config.copy_and_resolve_references()
    together_cfg.num_seeds = num_seeds
    together, res = _train_in_child(together_cfg, os.path.join(root, "together"),
                                    os.path.join(root, "cache-together"))
    log(f"{num_seeds} seeds in one vmapped program: {together:.1f} s")
    walls, accs = [], []
    for i in range(num_seeds):
      one = config.copy_and_resolve_references()
      one.num_seeds, one.seed = 1, config.seed + i
      wall, r = _train_in_child(one, os.path.join(root, f"seed{i}"),
                                os.path.join(root, "cache-sequential"))
      walls.append(wall)
      accs.append(r["test_accuracy"])
      log(f"seed {one.seed} alone: {wall:.1f} s")
  return {"num_seeds": num_seeds, "vmapped_s": together, "sequential_s": sum(walls),
          "sequential_each_s": walls, "speedup": sum(walls) / together,
          "test_accuracy_per_seed_vmapped": res["test_accuracy_per_seed"],
          "test_accuracy_per_seed_sequential": accs}


def format_line(result):
  """The record in one line: both wall times and the speed-up."""
  n = result["num_seeds"]
  return (f"{n} seeds: one vmapped program {result['vmapped_s']:.1f} s, {n} sequential runs "
          f"{result['sequential_s']:.1f} s: {result['speedup']:.2f}x")
