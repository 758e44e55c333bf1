"""`export`: the course CNN trained by cnnlab (the smoke run), loaded into the course's Keras 3
and PyTorch models (cnnlab/inspect/reference_models.py), predicts the same classes on the
10,000 real test images, with probabilities/logits within a stated tolerance.

Keras 3 is in the dev extra (every test run has it). torch (the `bench` extra) is optional: without
it the torch test is skipped with the reason (conftest.needs_torch), unless CNNLAB_REQUIRE_EXTRAS
names torch, as in CI's extras row, where its absence fails.
"""

import os

import jax
import numpy as np
import pytest

from cnnlab import data
from cnnlab.inspect import export, reference_models as ref
from cnnlab.inspect.restore import load_run
from cnnlab.train.evaluate import _logits
from conftest import DATA_DIR, needs_data, needs_torch, run_cli

# Measured on the smoke run (float32, 10,000 test images): max |Keras prob - cnnlab prob|
# 6.0e-7, max |torch logit - cnnlab logit| 3.8e-6 with |logits| <= 9.7. The bounds leave ~10x
# for other CPUs' summation orders; a layout mistake gives differences of order 1.
PROB_TOL, LOGIT_TOL = 1e-5, 5e-5


@pytest.fixture(scope="module")
def reference(smoke_run):
  """(workdir, test images scaled to [0, 1] NHWC, cnnlab's logits on them, labels)."""
  workdir = smoke_run[0]
  images, labels = data.load_split("fashion_mnist", "test", DATA_DIR)
  _, _, state, _ = load_run(workdir)
  logits = np.concatenate([np.asarray(_logits(state, images[i:i + 2000]))
                           for i in range(0, len(images), 2000)])
  assert len(images) == 10_000 and (logits.argmax(1) == labels).mean() > 0.7
  return workdir, images.astype(np.float32) / 255, logits, labels


@needs_data
def test_npz_holds_every_parameter_by_path(reference, tmp_path):
  workdir, _, _, _ = reference
  path = export.export(workdir, "npz", str(tmp_path / "w.npz"))
  _, _, state, _ = load_run(workdir)
  saved = np.load(path)
  want = export.flat({"params": jax.device_get(state.params)})
  assert sorted(saved.files) == sorted(want) == [
      f"params/{layer}/{p}" for layer in ("conv1", "conv2", "dense1", "output")
      for p in ("bias", "kernel")]
  for key, value in want.items():
    np.testing.assert_array_equal(saved[key], value)
  assert sum(saved[k].size for k in saved.files) == 333_526  # SPEC's parameter count


@needs_data
@pytest.mark.slow  # importing Keras and its first predict: ~15 s on the loaded 2-core machine
@pytest.mark.parametrize("suffix", [".keras", ".weights.h5"])
def test_keras_model_predicts_the_same_classes(reference, tmp_path, suffix):
  workdir, x, logits, _ = reference
  path = export.export(workdir, "keras", str(tmp_path / f"course{suffix}"))
  import keras
  if suffix == ".keras":  # the whole model: no definition needed to load it
    model = keras.saving.load_model(path)
  else:  # the course's own model definition, then its weights
    model = ref.keras_textbook_cnn()
    model.load_weights(path)
  probs = model.predict(x, batch_size=2000, verbose=0)
  assert keras.backend.backend() == "jax"
  np.testing.assert_array_equal(probs.argmax(1), logits.argmax(1))
  assert np.abs(probs - np.asarray(jax.nn.softmax(logits, -1))).max() < PROB_TOL


@needs_data
@needs_torch
@pytest.mark.slow  # importing torch: ~15 s on the loaded 2-core machine
def test_torch_model_predicts_the_same_classes(reference, tmp_path):
  workdir, x, logits, _ = reference
  import torch
  path = export.export(workdir, "torch", str(tmp_path / "course.pt"))
  model = ref.torch_textbook_cnn()
  model.load_state_dict(torch.load(path))
  model.eval()
  with torch.no_grad():
    out = model(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))).numpy()
  np.testing.assert_array_equal(out.argmax(1), logits.argmax(1))
  assert np.abs(out - logits).max() < LOGIT_TOL


def test_torch_flatten_order_is_nchw():
  """dense1's row for (h, w, c) in cnnlab's NHWC flatten moves to PyTorch's c*H*W + h*W + w."""
  rng = np.random.default_rng(0)
  params = {"conv1": {"kernel": rng.normal(size=(3, 3, 1, 32)), "bias": np.zeros(32)},
            "conv2": {"kernel": rng.normal(size=(3, 3, 32, 64)), "bias": np.zeros(64)},
            "dense1": {"kernel": rng.normal(size=(3136, 100)), "bias": np.zeros(100)},
            "output": {"kernel": rng.normal(size=(100, 10)), "bias": np.zeros(10)}}
  sd = export.torch_state_dict(params)
  h, w, c = 2, 5, 17
  np.testing.assert_array_equal(sd["7.weight"][:, c * 49 + h * 7 + w],
                                params["dense1"]["kernel"][(h * 7 + w) * 64 + c])
  assert sd["3.weight"].shape == (64, 32, 3, 3)
  assert sd["3.weight"][5, 7, 0, 2] == params["conv2"]["kernel"][0, 2, 7, 5]


@needs_data
def test_export_command_writes_into_the_workdir(smoke_run, tmp_path):
  import shutil
  workdir = str(tmp_path / "run")
  shutil.copytree(smoke_run[0], workdir)
  proc = run_cli("export", f"--workdir={workdir}", "--format=npz")
  assert proc.returncode == 0, proc.stderr[-2000:]
  path = os.path.join(workdir, "export", "textbook_cnn.npz")
  assert proc.stdout.strip() == path and os.listdir(os.path.dirname(path)) == ["textbook_cnn.npz"]
  umask = os.umask(0)
  os.umask(umask)
  assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # the user's umask, not mkstemp's 0600
