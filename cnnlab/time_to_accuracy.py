"""Time to a test accuracy from a cold process: the number a user actually waits for.

`run(config, target)` trains on the whole training split and evaluates the test set after
every epoch, stopping at the first epoch that reaches `target`. The test set only answers
"reached yet?": recipes (experiments/fast.py) are chosen on the validation split with
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

from cnnlab import cli, data, runs, steps, train  # noqa: E402


def run(config, target, log=print, t0=None):
  """Train `config`; return {"reached_s", "epoch", "history"} (reached_s None if never).

  Seconds are counted from `t0` (default: this process's start, or its parent's spawn).
  """
  t0 = _T0 if t0 is None else t0
  images, labels = data.load_split(config.dataset, "train", config.data_dir or None)
  if config.train_size:
    images, labels = images[:config.train_size], labels[:config.train_size]
  test = train.eval_batches(*data.load_test(config), config.eval_batch_size)
  spe = len(images) // config.batch_size
  _, state = runs.build(config, spe)
  train_batch = train.make_train_batch(config, spe)
  order_fn = train.make_epoch_order(spe, len(images))
  images, labels = jax.device_put((images, labels))
  flip_tta = config.get("eval_flip_tta", False)
  eval_compiled = train.precompile_evaluation(state, test, 0, flip_tta)
  sums = steps.zero_sums()
  history = []
  for epoch in range(1, config.num_epochs + 1):
    order = order_fn(state.step, state.rng)
    for _ in range(spe):
      state, sums = train_batch(state, sums, images, labels, order)
    eval_compiled.join()
    accuracy = train.evaluate(state, test, 0, flip_tta)["accuracy"]
    history.append({"epoch": epoch, "test_accuracy": accuracy, "s": time.time() - t0})
    log(f"epoch {epoch}: test accuracy {accuracy:.4f} at {history[-1]['s']:.1f} s")
    if accuracy >= target:
      return {"reached_s": history[-1]["s"], "epoch": epoch, "history": history}
  return {"reached_s": None, "epoch": None, "history": history}


def _child(cache_dir, config, target):
  """One cold-process run: `python -m cnnlab.time_to_accuracy` with our clock and cache."""
  env = dict(os.environ, CNNLAB_JAX_CACHE=cache_dir, CNNLAB_T0=repr(time.time()))
  out = cli.run_python(["-m", "cnnlab.time_to_accuracy", config.to_json(), repr(target)], env)
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
  cli.setup_jax()
  _config = ml_collections.ConfigDict(json.loads(sys.argv[1]))
  _result = run(_config, float(sys.argv[2]), log=lambda line: print(line, file=sys.stderr))
  print(json.dumps(_result))
