"""Time to a test accuracy from a cold process: the number a user actually waits for.

`run(config, target)` trains on the whole training split and evaluates the test set after
every epoch (a hook of the one epoch loop, train.epochs), stopping at the first epoch that reaches
`target`. The test set only answers "reached yet?": recipes (experiments/fast.py) are chosen on the validation split with
`./launch.sh train`, and once chosen they may fit all 60,000 training images.

`measure(config, target, repeats)` runs it for seeds config.seed + 0..repeats-1, each in a
fresh Python process so that interpreter start, imports, data loading and compilation all
count: `cold` runs get an empty persistent compilation cache, `warm` runs (optional) the one
their seed's cold run filled (a user's second run). A speedrun asks every seed to
reach the accuracy, so the record says which did, not only a median.
"""

import json
import os
import statistics
import sys
import tempfile
import time

_T0 = float(os.environ.get("CNNLAB_T0", time.time()))  # the parent's clock at our spawn

import jax  # noqa: E402  (after _T0: import time counts)
import ml_collections  # noqa: E402

from cnnlab import config as config_lib  # noqa: E402
from cnnlab import data, parallel  # noqa: E402
from cnnlab.bench.child import run_python  # noqa: E402
from cnnlab.train import epochs  # noqa: E402
from cnnlab.train import state as state_lib  # noqa: E402
from cnnlab.train import step as step_lib  # noqa: E402


def run(config, target, log=print, t0=None, limit_s=None):
  """Train `config`; return {"reached_s", "epoch", "history"} (reached_s None if never).

  The one training loop (train.loop.run_epochs) with the test set as its evaluation and a
  hook that stops at the first epoch reaching `target`, or at the first that ends past
  `limit_s` seconds (a speedrun whose clock ran out: later epochs could not count).
  Seconds are counted from `t0` (default: this process's start, or its parent's spawn).
  """
  t0 = _T0 if t0 is None else t0
  config_lib.check(config)
  images, labels = data.load_split(config, "train")
  first = config.train_size or config.get("speedrun", {}).get("train_images", 0)
  if first:
    images, labels = images[:first], labels[:first]
  job = epochs.make_job(config, parallel.make_mesh(config.num_devices), (images, labels),
                      data.load_test(config))
  shapes = state_lib.shapes(config, job.steps_per_epoch)
  compiling = epochs.precompile_training(job, shapes)
  _, state = state_lib.build_fresh(config, job.steps_per_epoch, (images, labels), like=shapes)
  state = jax.device_put(state, job.replicated)
  sums = jax.device_put(step_lib.zero_sums(job.num_seeds), job.replicated)
  history = []

  def reached(state, sums, record, train, seconds):
    history.append({"epoch": record["epoch"], "test_accuracy": record["val_accuracy"],
                    "s": time.time() - t0})
    log(f"epoch {record['epoch']}: test accuracy {record['val_accuracy']:.4f} at "
        f"{history[-1]['s']:.1f} s")
    return record["val_accuracy"] >= target or (limit_s is not None
                                                 and history[-1]["s"] > limit_s)

  epochs.run_epochs(job, state, sums, reached, compiling=compiling)
  if history and history[-1]["test_accuracy"] >= target:
    return {"reached_s": history[-1]["s"], "epoch": history[-1]["epoch"], "history": history}
  return {"reached_s": None, "epoch": None, "history": history}


def _child(cache_dir, config, target, limit_s):
  """One run in a fresh process: `python -m cnnlab.bench.time_to_accuracy` with our clock and
  `cache_dir` as its persistent compilation cache."""
  env = dict(os.environ, CNNLAB_JAX_CACHE=cache_dir, CNNLAB_T0=repr(time.time()))
  out = run_python(["-m", "cnnlab.bench.time_to_accuracy", config.to_json(), repr(target),
                    repr(limit_s)], env)
  return json.loads(out.strip().splitlines()[-1])


def measure(config, target, repeats=3, cache="cold", log=print, limit_s=None):
  """Seeds config.seed + 0..repeats-1, one fresh process each; the JSON record.

  `limit_s` (None: no limit) ends each run at the first epoch that ends past it; the
  summaries count the seeds that reached the target within it.
  cache="cold": every run starts with an empty persistent compilation cache (a speedrun's
  "cold process"); "warm": each seed is rerun with the cache its cold run filled, a user's
  second run (the filling run is not reported); "both" reports both, interleaved by seed.
  """
  kinds = ["cold", "warm"] if cache == "both" else [cache]
  seeds = [config.seed + i for i in range(repeats)]
  runs_ = {kind: [] for kind in kinds}
  for seed in seeds:
    one = config.copy_and_resolve_references()
    one.seed = seed
    with tempfile.TemporaryDirectory() as cache_dir:  # empty: this seed's cold run fills it
      for kind in ("cold", "warm") if "warm" in kinds else ("cold",):
        result = dict(seed=seed, **_child(cache_dir, one, target, limit_s))
        log(f"{kind} cache, seed {seed}" + ("" if kind in kinds else " (fills the cache)")
            + ": " + _outcome(target, result))
        if kind in kinds:
          runs_[kind].append(result)
  return {"target": target, "limit_s": limit_s, "seeds": seeds, "cache": cache,
          **{kind: summarize(results, limit_s) for kind, results in runs_.items()}}


def _outcome(target, result):
  if result["reached_s"] is not None:
    return f"{target} reached after epoch {result['epoch']} at {result['reached_s']:.1f} s"
  return (f"{target} not reached in {len(result['history'])} epochs (best "
          f"{max(h['test_accuracy'] for h in result['history']):.4f})")


def summarize(runs_, limit_s=None):
  """Runs of one cache state: how many seeds reached (and within `limit_s`), mean +- std and
  max of their seconds. std is the sample standard deviation (None for fewer than two)."""
  times = [r["reached_s"] for r in runs_ if r["reached_s"] is not None]
  within = len([t for t in times if limit_s is None or t <= limit_s])
  return {"runs": runs_, "reached": len(times), "reached_within_limit": within,
          "every_seed_reached": len(times) == len(runs_),
          "not_reached_seeds": [r["seed"] for r in runs_ if r["reached_s"] is None],
          "mean_s": statistics.mean(times) if times else None,
          "std_s": statistics.stdev(times) if len(times) > 1 else None,
          "max_s": max(times) if times else None}


def format_table(result):
  seeds = ", ".join(str(s) for s in result["seeds"])
  limit = result.get("limit_s")
  lines = [f"time to test accuracy {result['target']} (one fresh process per seed, compile "
           f"included; seeds {seeds}" + (f"; limit {limit:g} s" if limit else "") + "):"]
  for kind in ("cold", "warm"):
    if kind not in result:
      continue
    r = result[kind]
    spread = "" if r["std_s"] is None else f" +- {r['std_s']:.1f}"
    lines.append(f"  {kind} compilation cache: " + (
        "every seed reached" if r["every_seed_reached"] else
        f"{r['reached']} of {len(r['runs'])} seeds reached; seed(s) "
        f"{', '.join(map(str, r['not_reached_seeds']))} did not")
        + (f": mean {r['mean_s']:.1f}{spread} s, max {r['max_s']:.1f} s" if r["reached"] else "")
        + (f"; {r['reached_within_limit']} of {len(r['runs'])} within the {limit:g} s limit"
           if limit else ""))
    for run_ in r["runs"]:
      curve = ", ".join(f"{h['test_accuracy']:.4f} at {h['s']:.1f} s" for h in run_["history"])
      lines.append(f"    seed {run_['seed']}: {_outcome(result['target'], run_)}; test "
                   f"accuracy by epoch: {curve}")
  return "\n".join(lines)


if __name__ == "__main__":
  from cnnlab.compilation import use_persistent_cache
  use_persistent_cache()
  _config = ml_collections.ConfigDict(json.loads(sys.argv[1]))
  _limit = None if sys.argv[3] == "None" else float(sys.argv[3])
  _result = run(_config, float(sys.argv[2]), log=lambda line: print(line, file=sys.stderr),
                limit_s=_limit)
  print(json.dumps(_result))
