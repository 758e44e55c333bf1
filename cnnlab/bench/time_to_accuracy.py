"""Time to a test accuracy from a cold process: the number a user actually waits for.

`run(config, target)` trains on the whole training split and evaluates the test set after
every epoch (a hook of the one epoch loop, train.epochs), stopping at the first epoch that reaches
`target`. The test set only answers "reached yet?": recipes (experiments/fast.py) are chosen on the validation split with
`./launch.sh train`, and once chosen they may fit all 60,000 training images.

`measure(config, target, repeats)` runs it in fresh Python processes so interpreter start,
imports, data loading and compilation all count: `cold` runs get an empty persistent
compilation cache, `warm` runs one filled by an earlier run (a user's second run).
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


def run(config, target, log=print, t0=None):
  """Train `config`; return {"reached_s", "epoch", "history"} (reached_s None if never).

  The one training loop (train.loop.run_epochs) with the test set as its evaluation and a
  hook that stops at the first epoch reaching `target`. Seconds are counted from `t0`
  (default: this process's start, or its parent's spawn).
  """
  t0 = _T0 if t0 is None else t0
  config_lib.check(config)
  images, labels = data.load_split(config.dataset, "train", config.data_dir or None)
  if config.train_size:
    images, labels = images[:config.train_size], labels[:config.train_size]
  job = epochs.make_job(config, parallel.make_mesh(config.num_devices), (images, labels),
                      data.load_test(config))
  _, state = state_lib.build(config, job.steps_per_epoch)
  state = jax.device_put(state, job.replicated)
  sums = jax.device_put(step_lib.zero_sums(job.seeds), job.replicated)
  history = []

  def reached(state, sums, record, train, seconds):
    history.append({"epoch": record["epoch"], "test_accuracy": record["val_accuracy"],
                    "s": time.time() - t0})
    log(f"epoch {record['epoch']}: test accuracy {record['val_accuracy']:.4f} at "
        f"{history[-1]['s']:.1f} s")
    return record["val_accuracy"] >= target

  epochs.run_epochs(job, state, sums, reached)
  if history and history[-1]["test_accuracy"] >= target:
    return {"reached_s": history[-1]["s"], "epoch": history[-1]["epoch"], "history": history}
  return {"reached_s": None, "epoch": None, "history": history}


def _child(cache_dir, config, target):
  """One cold-process run: `python -m cnnlab.bench.time_to_accuracy` with our clock and cache."""
  env = dict(os.environ, CNNLAB_JAX_CACHE=cache_dir, CNNLAB_T0=repr(time.time()))
  out = run_python(["-m", "cnnlab.bench.time_to_accuracy", config.to_json(), repr(target)], env)
  return json.loads(out.strip().splitlines()[-1])


def measure(config, target, repeats=3, log=print):
  """`repeats` cold-cache and `repeats` warm-cache runs, interleaved; the JSON record."""
  runs_ = {"cold": [], "warm": []}

  def record(kind, result):
    runs_[kind].append(result)
    reached = result["reached_s"]
    log(f"{kind} cache, run {len(runs_[kind])}/{repeats}: "
        + (f"{target} reached after epoch {result['epoch']} at {reached:.1f} s" if reached
           else f"{target} not reached in {len(result['history'])} epochs "
                f"(best {max(h['test_accuracy'] for h in result['history']):.4f})"))

  with tempfile.TemporaryDirectory() as warm:
    for r in range(repeats):
      with tempfile.TemporaryDirectory() as empty:  # the first cold run fills the warm cache
        record("cold", _child(warm if r == 0 else empty, config, target))
      record("warm", _child(warm, config, target))
  summary = {}
  for kind, results in runs_.items():
    times = [r["reached_s"] for r in results]
    done = None not in times
    summary[kind] = {"runs": results, "reached": sum(t is not None for t in times),
                     "median_s": statistics.median(times) if done else None,
                     "min_s": min(times) if done else None,
                     "max_s": max(times) if done else None}
  return {"target": target, "repeats": repeats, **summary}


def format_table(result):
  lines = [f"time to test accuracy {result['target']} (fresh process, compile included; "
           f"{result['repeats']} runs each):"]
  for kind in ("cold", "warm"):
    r = result[kind]
    accs = ", ".join(f"{run['history'][-1]['test_accuracy']:.4f}" for run in r["runs"])
    lines.append(f"  {kind} compilation cache: " + (
        f"median {r['median_s']:.1f} s (min {r['min_s']:.1f}, max {r['max_s']:.1f})"
        if r["median_s"] is not None else f"reached in {r['reached']} of {len(r['runs'])} runs")
        + f"; final test accuracies {accs}")
  return "\n".join(lines)


if __name__ == "__main__":
  from cnnlab.compilation import use_persistent_cache
  use_persistent_cache()
  _config = ml_collections.ConfigDict(json.loads(sys.argv[1]))
  _result = run(_config, float(sys.argv[2]), log=lambda line: print(line, file=sys.stderr))
  print(json.dumps(_result))
