"""Training: the pure step, compile-once, exact evaluation, checkpoints, resume, determinism."""

import functools
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnnlab import checkpoint, compilation, data, rundir
from cnnlab.inspect import restore
from cnnlab.train import state as state_lib
from cnnlab.train import step as step_lib
from cnnlab.models import create_model
from cnnlab.train import train_and_evaluate
from cnnlab.train.evaluate import eval_batches, evaluate, precompile
from conftest import DATA_DIR, REPO, needs_data, smoke_config


def _real_batch(n=64):
  x, y = data.load_split("fashion_mnist", "train", DATA_DIR)
  return {"image": jnp.asarray(x[:n]), "label": jnp.asarray(y[:n])}


@needs_data
def test_train_step_lowers_the_loss_on_a_fixed_batch():
  _, state = state_lib.build(smoke_config())
  batch = _real_batch()
  step = jax.jit(step_lib.train_step)
  losses = []
  for _ in range(10):
    state, metrics = step(state, batch)
    losses.append(float(metrics["loss"]))
  # measured on the VM that built cnnlab; abs 0.02 covers another CPU's rounding (docs/testing.md)
  assert losses == pytest.approx([2.3215, 2.1810, 2.0336, 1.9265, 1.7974, 1.7212, 1.6352, 1.6047,
                                  1.4565, 1.4894], abs=0.02), losses
  assert int(state.step) == 10


@needs_data
def test_train_batch_compiles_once_and_gathers_on_device():
  config = smoke_config()
  _, state = state_lib.build(config)
  x, y = data.load_split("fashion_mnist", "train", DATA_DIR)
  images, labels = jax.device_put(x[:256]), jax.device_put(y[:256])
  train_batch = step_lib.make_train_batch(32, 8)
  order = step_lib.epoch_permutation(state.rng, 0, 256)
  state, sums = jax.device_put((state, step_lib.zero_sums()))
  with jax.transfer_guard("disallow"):  # nothing crosses host<->device inside the epoch
    for _ in range(8):
      state, sums = train_batch(state, sums, images, labels, order)
  assert train_batch._cache_size() == 1
  sums = jax.device_get(sums)
  assert sums["count"] == 256 and sums["nonfinite"] == 0 and np.isfinite(sums["loss"])


@needs_data
def test_evaluation_pads_and_masks_so_every_image_counts_once():
  _, state = state_lib.build(smoke_config())
  x, y = data.load_split("fashion_mnist", "test", DATA_DIR)
  x, y = x[:1003], y[:1003]  # not a multiple of the eval batch
  logits = step_lib.logits_fn(state, jnp.asarray(x))
  want_acc = float(jnp.mean(jnp.argmax(logits, -1) == y))
  want_loss = float(jnp.mean(step_lib.cross_entropy(logits, jnp.asarray(y))))
  got = evaluate(state, eval_batches(x, y, 100))
  assert got["accuracy"] == pytest.approx(want_acc, abs=1e-6)
  assert got["loss"] == pytest.approx(want_loss, rel=1e-5)


def test_smoke_run_writes_checkpoints_metrics_and_results(smoke_run):
  workdir, results = smoke_run
  lines = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
  assert [r["epoch"] for r in lines] == [1, 2]
  assert os.listdir(os.path.join(workdir, "tensorboard"))
  assert sorted(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints"))) == [64, 128]
  assert json.load(open(os.path.join(workdir, "config.json")))["model"]["name"] == "textbook_cnn"
  # Known values, as in /work/baseline/smoke at 46a6241 on the VM that built cnnlab. Another
  # CPU gave 0.7520 and Colab's jax 0.7.2 0.7540 (docs/testing.md): abs 0.005 = 5 of the 1,000
  # test images; the losses agree to ~1e-3, so abs 0.01 for them. Epoch 2's validation moved
  # more on Colab's jax 0.7.2 (val loss 0.6150, accuracy 0.7773: 0.010 and 0.012 off): 0.015.
  assert results["test_accuracy"] == pytest.approx(0.7560, abs=0.005)
  assert results["test_loss"] == pytest.approx(0.6647, abs=0.01)
  assert (results["best_epoch"], results["best_step"]) == (2, 128)
  assert [r["train_loss"] for r in lines] == pytest.approx([1.3111, 0.7654], abs=0.01)
  assert [r["val_loss"] for r in lines] == pytest.approx([0.7703, 0.6050], abs=0.015)
  assert [r["val_accuracy"] for r in lines] == pytest.approx([0.7422, 0.7891], abs=0.015)


def test_restore_gives_the_same_eval_numbers(smoke_run):
  workdir, results = smoke_run
  config, _, state, meta = restore.load_run(workdir)
  best = rundir.best(rundir.Run(workdir).history())
  assert best == min(rundir.Run(workdir).history(), key=lambda r: r["val_loss"])
  assert int(state.step) == best["step"] == results["best_step"]
  val = evaluate(state, eval_batches(*data.load_train_validation(config)["validation"], 256))
  assert val["loss"] == pytest.approx(best["val_loss"], rel=1e-6)
  assert val["accuracy"] == best["val_accuracy"]
  test = evaluate(state, eval_batches(*data.load_test(config), 256))
  assert test["accuracy"] == results["test_accuracy"]


@needs_data
def test_evaluation_reads_weights_updated_in_place():
  """New weights at the old weights' address (a donating step) are the ones evaluated: jaxlib
  < 0.8.2's XNNPACK dots reused the weights packed at the first call (docs/testing.md)."""
  _, state = state_lib.build(smoke_config())
  batch = _real_batch(256)
  batches = eval_batches(np.asarray(batch["image"]), np.asarray(batch["label"]), 128)
  before = evaluate(state, batches)
  kernel = lambda s: s.params["dense1"]["kernel"]
  address = kernel(state).unsafe_buffer_pointer()
  triple = jax.jit(lambda p: jax.tree.map(lambda w: w * 3.0, p), donate_argnums=0)
  state = state.replace(params=triple(state.params))
  assert kernel(state).unsafe_buffer_pointer() == address  # the case under test: in place
  fresh = jax.jit(step_lib.eval_step, compiler_options=compilation.compile_options())
  sums = [jax.device_get(fresh(state, b)) for b in batches]
  want = sum(float(m["loss"]) for m in sums) / sum(float(m["count"]) for m in sums)
  assert evaluate(state, batches)["loss"] == pytest.approx(want, rel=1e-5)
  assert abs(want - before["loss"]) > 1e-3  # tripling the weights moved the loss


def test_rerunning_a_finished_workdir_does_not_retrain(smoke_run):
  workdir, results = smoke_run
  before = os.path.getmtime(os.path.join(workdir, "metrics.jsonl"))
  assert train_and_evaluate(smoke_config(), workdir, log=lambda *a: None) == results
  assert os.path.getmtime(os.path.join(workdir, "metrics.jsonl")) == before


def _final_digest(workdir):
  mngr = checkpoint.manager(rundir.Run(workdir).checkpoints_dir, read_only=True)
  step = max(mngr.all_steps())
  return mngr.restore(step, args=checkpoint.ocp.args.Composite(
      meta=checkpoint.ocp.args.JsonRestore()))["meta"]["digest"]


@needs_data
@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])  # a scheduler; Ctrl-C
def test_sigterm_then_resume_equals_an_uninterrupted_run(smoke_run, tmp_path, signum):
  """SIGTERM or Ctrl-C mid-epoch saves at the step boundary; the resumed run ends
  bit-identical."""
  workdir = str(tmp_path / "interrupted")
  args = [sys.executable, "-m", "cnnlab.cli", "train",
          f"--config={REPO}/experiments/smoke.py", f"--workdir={workdir}",
          f"--data_dir={DATA_DIR}"]
  env = dict(os.environ, PYTHONPATH=REPO)
  proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
  deadline = time.time() + 120
  while not os.path.exists(os.path.join(workdir, "checkpoints", "64")):  # epoch 1 saved
    assert proc.poll() is None and time.time() < deadline, proc.communicate()
    time.sleep(0.01)
  proc.send_signal(signum)
  out, err = proc.communicate(timeout=120)
  if proc.returncode == 0:
    pytest.fail("the run finished before the signal arrived; make the test config larger")
  assert proc.returncode == 128 + signum, err
  assert f"{signal.Signals(signum).name} received: saved step" in err + out
  command = re.search(r"resume with: \./launch\.sh (.*)$", err + out, re.M).group(1)
  assert command == f"train --workdir={workdir}"  # followed literally: no --config needed
  resumed = subprocess.run([sys.executable, "-m", "cnnlab.cli", *command.split()], env=env,
                           capture_output=True, text=True, timeout=300)
  assert resumed.returncode == 0, resumed.stderr
  step = int(re.search(r"saved step (\d+)", err + out).group(1))
  assert step > 64 and f"from step {step} " in resumed.stdout  # resumed, not restarted
  reference, _ = smoke_run
  read = lambda d: open(os.path.join(d, "metrics.jsonl")).read()
  assert read(workdir) == read(reference)  # same numbers, to the last bit
  assert _final_digest(workdir) == _final_digest(reference)


@needs_data
@pytest.mark.slow
def test_augmentation_in_the_step_is_deterministic_and_applied():
  _, state = state_lib.build(smoke_config())
  batch = _real_batch(32)
  aug = {"crop_padding": 2, "flip": True, "erase_prob": 0.5}
  plain = float(jax.jit(step_lib.train_step)(state, batch)[1]["loss"])
  augmented = jax.jit(lambda s, b: step_lib.train_step(s, b, augment_config=aug))
  first, second = (float(augmented(state, batch)[1]["loss"]) for _ in range(2))
  assert first == second != plain  # same (rng, step) -> same crops; and they change the input
  no_op = jax.jit(lambda s, b: step_lib.train_step(s, b, augment_config={}))
  assert float(no_op(state, batch)[1]["loss"]) == plain


@needs_data
@pytest.mark.slow
def test_flip_tta_evaluation_counts_every_image():
  _, state = state_lib.build(smoke_config())
  x, y = data.load_split("fashion_mnist", "test", DATA_DIR)
  got = evaluate(state, eval_batches(x[:300], y[:300], 128), flip_tta=True)
  logits = step_lib.augment.flip_tta_logits(lambda im: step_lib.logits_fn(state, im), jnp.asarray(x[:300]))
  assert got["accuracy"] == pytest.approx(float(jnp.mean(jnp.argmax(logits, -1) == y[:300])))


class _HostReads:
  """Counts device->host reads of jax.Arrays made from Python (a test-only patch).

  JAX's transfer guard never fires on the CPU backend (a CPU array's host copy is not a
  transfer), so reads are counted where Python makes them: `_value` (jax.device_get, float,
  int, bool), `__array__`, `item` and `tolist`. NumPy's buffer-protocol path on CPU arrays is
  invisible here; the training loop reads only through jax.device_get.
  """

  def __init__(self, monkeypatch):
    from jax._src import array
    self.count = 0
    value = array.ArrayImpl._value

    def counted_value(arr):
      self.count += 1
      return value.fget(arr)

    monkeypatch.setattr(array.ArrayImpl, "_value", property(counted_value))
    for name in ("__array__", "item", "tolist"):
      monkeypatch.setattr(array.ArrayImpl, name, self._counted(getattr(array.ArrayImpl, name)))

  def _counted(self, method):
    def counted(arr, *args, **kwargs):
      self.count += 1
      return method(arr, *args, **kwargs)
    return counted


@needs_data
@pytest.mark.slow
def test_host_reads_per_epoch_do_not_grow_with_the_number_of_steps(tmp_path, monkeypatch):
  reads = _HostReads(monkeypatch)
  counts = {}
  for train_size, epochs in ((512, 2), (2048, 2), (2048, 3)):  # 16 or 64 steps per epoch
    before = reads.count
    train_and_evaluate(smoke_config(train_size=train_size, num_epochs=epochs),
                       str(tmp_path / f"{train_size}-{epochs}"), log=lambda *a: None)
    counts[train_size, epochs] = reads.count - before
  per_epoch = counts[2048, 3] - counts[2048, 2]
  assert counts[512, 2] == counts[2048, 2], counts  # 4x the steps, not one read more
  # What an epoch does read: the step counter, the summed metrics and eval sums once, and
  # the checkpoint (Orbax reads each leaf of state + sums; the digest reads them again).
  leaves = len(jax.tree.leaves((state_lib.build(smoke_config())[1], step_lib.zero_sums())))
  assert 0 < per_epoch <= 3 * leaves + 10, (counts, leaves)


@pytest.mark.parametrize("name", ["textbook_cnn", "vgg_small"])  # glorot-uniform, truncated normal
@pytest.mark.slow
def test_initialisation_with_compile_options_draws_the_same_bits(name):
  """create_train_state compiles with compilation.compile_options: the values must not change."""
  model = create_model(name)
  state = state_lib.create_train_state(model, optax.sgd(0.1), jax.random.PRNGKey(7), (28, 28, 1))
  init_rng, _ = jax.random.split(jax.random.PRNGKey(7))
  reference = jax.jit(functools.partial(model.init, train=False))(  # XLA's default options
      init_rng, jnp.zeros((1, 28, 28, 1), jnp.float32))["params"]
  jax.tree.map(np.testing.assert_array_equal, state.params, reference)


@needs_data
@pytest.mark.slow
def test_training_with_compile_options_gives_the_same_bits():
  """Three Adam steps of the course CNN: cnnlab's XLA options vs XLA's defaults, bit for bit."""
  _, state = state_lib.build(smoke_config())
  batch = _real_batch()
  fast = jax.jit(step_lib.train_step, compiler_options=compilation.compile_options())
  default = jax.jit(step_lib.train_step)
  a = b = state
  for _ in range(3):
    a, _ = fast(a, batch)
    b, _ = default(b, batch)
  jax.tree.map(np.testing.assert_array_equal, (a.params, a.opt_state), (b.params, b.opt_state))
  assert compilation.compile_options() == {"xla_backend_optimization_level": 1}  # CPU: it is in use


def _compile_log(fn, *args):
  """(result, JAX's 'XLA compilation' log lines) of calling fn(*args)."""
  records, handler, logger = [], logging.Handler(), logging.getLogger("jax")
  handler.emit = records.append
  logger.addHandler(handler)
  try:
    with jax.log_compiles(True):
      out = fn(*args)
  finally:
    logger.removeHandler(handler)
  return out, [r.getMessage() for r in records if "XLA compilation" in r.getMessage()]


def test_precompile_fills_the_cache_the_call_uses():
  """A background compile is reused by the call (no second compile), and it gives one result."""
  f = jax.jit(lambda x: jnp.tanh(x) @ x.T)
  x = jnp.arange(12.0).reshape(3, 4)
  precompile(f, x).join()
  y, compiles = _compile_log(f, x)
  assert not compiles, compiles
  np.testing.assert_allclose(y, np.tanh(x) @ np.asarray(x).T, rtol=1e-6)
  _, control = _compile_log(jax.jit(lambda x: jnp.cos(x) @ x.T), x)  # the log does show compiles
  assert control, "no compile was logged for a fresh function: the check above proves nothing"


@needs_data
def test_the_step_compiled_from_the_state_shapes_is_the_one_the_first_step_calls():
  """epochs.precompile_training compiles from state.shapes while the state is built; the
  first step then compiles nothing and gives the numbers of a step compiled as usual."""
  from cnnlab import parallel
  from cnnlab.train import epochs
  config = smoke_config()
  images, labels = data.load_split(config, "train")
  train, held = (images[:256], labels[:256]), (images[256:320], labels[256:320])
  sums = {}
  for early in (True, False):
    job = epochs.make_job(config, parallel.make_mesh(1), train, held)
    shapes = state_lib.shapes(config, job.steps_per_epoch)
    if early:
      epochs.precompile_training(job, shapes).join()
    _, state = state_lib.build(config, job.steps_per_epoch, train[0], like=shapes)
    state, zeros = parallel.put((state, step_lib.zero_sums()), job.replicated)
    (_, sums[early]), compiles = _compile_log(job.train_batch, state, zeros,
                                              *next(job.batches.epoch(state, 0)))
    assert bool([c for c in compiles if "train_batch" in c]) != early, compiles
  np.testing.assert_equal(jax.device_get(sums[True]), jax.device_get(sums[False]))


@needs_data
@pytest.mark.slow
def test_early_stopping_fires_and_the_test_set_sees_the_best_epoch(tmp_path):
  """patience 1 on 512 images at a high learning rate: the validation loss turns up, the run
  stops one epoch later, and the single test evaluation uses the best epoch's weights."""
  config = smoke_config(train_size=512, validation_size=256, test_size=256, num_epochs=12,
                        early_stopping_patience=1, eval_batch_size=64)
  config.optimizer.learning_rate = 3e-3
  workdir = str(tmp_path / "run")
  results = train_and_evaluate(config, workdir, log=lambda *a: None)
  history = rundir.Run(workdir).history()
  best = rundir.best(history)
  assert results["stopped_early"] and len(history) == results["epochs"] < 12
  assert history[-1]["epoch"] == best["epoch"] + 1  # one epoch without a better val loss
  assert results["best_step"] == best["step"] and results["val_loss"] == best["val_loss"]
  _, _, state, _ = restore.load_run(workdir)  # the best step, restored
  assert int(state.step) == best["step"] < history[-1]["step"]
  test = evaluate(state, eval_batches(*data.load_test(config), 64))
  assert test["accuracy"] == results["test_accuracy"] and test["loss"] == results["test_loss"]
