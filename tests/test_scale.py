"""Scale: S seeds in one vmapped program, and data parallelism over 8 (simulated) devices."""

import json
import os
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest

from cnnlab import config as config_lib
from cnnlab.errors import UserError
from cnnlab.train import train_and_evaluate
from conftest import REPO, needs_data, smoke_config

pytestmark = pytest.mark.slow  # the quick tier skips it; --all and CI run it

TINY = dict(train_size=512, validation_size=256, test_size=256, num_epochs=2,
            early_stopping_patience=0, eval_batch_size=128)


@needs_data
def test_num_seeds_equals_separate_single_seed_runs(tmp_path):
  quiet = lambda *a: None
  multi = train_and_evaluate(smoke_config(num_seeds=3, **TINY), str(tmp_path / "multi"),
                             log=quiet)
  history = [json.loads(l) for l in open(tmp_path / "multi" / "metrics.jsonl")]
  for i in range(3):
    single = train_and_evaluate(smoke_config(seed=i, **TINY), str(tmp_path / f"s{i}"), log=quiet)
    single_history = [json.loads(l) for l in open(tmp_path / f"s{i}" / "metrics.jsonl")]
    # vmap turns the convolutions into grouped ones, which round differently in the last bit;
    # after one epoch the runs agree to 1e-5, later Adam's update normalisation amplifies the
    # last-bit differences (measured: up to 3e-3 relative after 32 steps), hence two tolerances.
    for m, s in zip(history, single_history):
      rtol = 1e-5 if m["epoch"] == 1 else 1e-2
      np.testing.assert_allclose(m["val_loss_per_seed"][i], s["val_loss"], rtol=rtol)
      np.testing.assert_allclose(m["train_loss_per_seed"][i], s["train_loss"], rtol=rtol)
    assert abs(multi["test_accuracy_per_seed"][i] - single["test_accuracy"]) <= 4 / 256
  assert multi["seeds"] == [0, 1, 2]
  assert multi["test_accuracy"] == pytest.approx(np.mean(multi["test_accuracy_per_seed"]))
  assert multi["test_accuracy_std"] == pytest.approx(np.std(multi["test_accuracy_per_seed"]))


@needs_data
@pytest.mark.parametrize("name", ["fashion_dnn", "textbook_cnn"])
def test_where_vmapped_seeds_differ_from_single_runs(name):
  """The source of the tolerance above, step by step: vmap batches every matmul (and turns the
  convolutions into grouped ones), and XLA rounds those in another order. Dense layers alone
  already show it (fashion_dnn), so it is rounding, not a different computation: after 3 Adam
  steps the parameters agree to 1e-5 (measured at most 3.5e-7 and 9.1e-7 on the VM that
  built this, 1.7e-6 on a 2-core EPYC with AVX-512) while they moved by ~1e-3. Later steps
  amplify such last-bit differences (Adam divides by sqrt(v))."""
  from cnnlab import data
  from cnnlab.train import state as state_lib
  from cnnlab.train import step as step_lib
  from conftest import DATA_DIR
  x, y = data.load_split("fashion_mnist", "train", DATA_DIR)
  batch = {"image": jax.numpy.asarray(x[:32]), "label": jax.numpy.asarray(y[:32])}
  model = ml_collections.ConfigDict({"name": name})
  _, multi = state_lib.build(smoke_config(num_seeds=3, model=model))
  singles = [state_lib.build(smoke_config(seed=i, model=model))[1] for i in range(3)]
  start = singles[0].params
  step, vstep = jax.jit(step_lib.train_step), jax.jit(jax.vmap(step_lib.train_step, (0, None)))
  for _ in range(3):
    multi = vstep(multi, batch)[0]
    singles = [step(s, batch)[0] for s in singles]
  for i, single in enumerate(singles):
    gap = jax.tree.map(lambda a, b: float(np.max(np.abs(a[i] - b))), multi.params, single.params)
    assert max(jax.tree.leaves(gap)) < 1e-5, gap
  moved = jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), singles[0].params, start)
  assert min(jax.tree.leaves(moved)) > 1e-4  # the steps did move every layer


EIGHT_DEVICES = r"""
import json, sys
import jax
from cnnlab import parallel
from cnnlab.train import state as state_lib
from cnnlab.train import step as step_lib
from cnnlab.train import train_and_evaluate
sys.path.insert(0, "tests")
from conftest import smoke_config
assert jax.device_count() == 8, jax.devices()
out = {}
for n in (1, 8):
  config = smoke_config(num_devices=n, **TINY)
  res = train_and_evaluate(config, f"{sys.argv[1]}/d{n}", log=lambda *a: None)
  out[n] = [json.loads(l) for l in open(f"{sys.argv[1]}/d{n}/metrics.jsonl")]
# The batch really is split over the 8 devices inside the compiled step.
mesh = parallel.make_mesh(8)
_, state = state_lib.build(smoke_config())
fn = step_lib.make_train_batch(32, 4, batch_sharding=parallel.batch_sharded(mesh))
rep = parallel.replicated(mesh)
args = jax.device_put((state, step_lib.zero_sums(), jax.numpy.zeros((128, 28, 28, 1), "uint8"),
                       jax.numpy.zeros((128,), "int32"), jax.numpy.arange(128)), rep)
hlo = fn.lower(*args).compile().as_text()  # the per-device program after partitioning
out["per_device_conv1"] = "f32[4,28,28,32]" in hlo  # 32 images / 8 devices = 4 each
out["all_reduce"] = "all-reduce" in hlo  # gradients summed across devices
print(json.dumps(out))
"""


@needs_data
def test_eight_devices_give_the_same_loss_curve_as_one(tmp_path):
  env = dict(os.environ, PYTHONPATH=REPO,
             XLA_FLAGS="--xla_force_host_platform_device_count=8")
  script = EIGHT_DEVICES.replace("TINY", repr(TINY).replace("'", '"'))
  script = script.replace("**{", "**dict(**{").replace("})", "}))")
  proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  assert out["per_device_conv1"] and out["all_reduce"]
  for one, eight in zip(out["1"], out["8"]):
    # Same data, same math; only the order of the gradient sum differs (all-reduce).
    np.testing.assert_allclose(eight["train_loss"], one["train_loss"], rtol=1e-3)
    np.testing.assert_allclose(eight["val_loss"], one["val_loss"], rtol=1e-3)
    assert abs(eight["val_accuracy"] - one["val_accuracy"]) <= 3 / 256


def test_batch_not_divisible_by_devices_is_a_user_error():
  config_lib.check_devices(smoke_config(batch_size=30))  # 1 device: anything goes
  with pytest.raises(UserError, match="config.num_devices=3 but 1 device"):
    config_lib.check_devices(smoke_config(num_devices=3))


def test_divisibility_message_names_the_fix(monkeypatch):
  monkeypatch.setattr(jax, "devices", lambda: [jax.local_devices()[0]] * 8)  # the count only
  with pytest.raises(UserError, match="batch_size=30 is not divisible by the 8 devices.*24"):
    config_lib.check_devices(smoke_config(batch_size=30))
