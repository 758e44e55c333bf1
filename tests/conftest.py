"""Shared fixtures: the real Fashion-MNIST files and one short real training per session.

Tests needing the data are skipped (with the reason) only where the IDX files are absent;
CI installs them (.ci/run), so there every test runs.
"""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.environ.get("CNNLAB_TEST_DATA_DIR", "/usr/share/datasets/fashion-mnist")
sys.path.insert(0, REPO)  # experiments/ (configs) is not an installed package


def has_data():
  from cnnlab import data
  return data.has_idx_files(DATA_DIR, "train") and data.has_idx_files(DATA_DIR, "test")


needs_data = pytest.mark.skipif(not os.path.isdir(DATA_DIR),
                                reason=f"Fashion-MNIST IDX files not in {DATA_DIR} "
                                       "(apt-get install dataset-fashion-mnist)")


def smoke_config(**overrides):
  """The smoke config (2,048 real training images, 2 epochs) with field overrides."""
  from experiments import smoke
  config = smoke.get_config()
  config.data_dir = DATA_DIR
  for key, value in overrides.items():
    target = config
    *path, last = key.split(".")
    for p in path:
      target = target[p]
    target[last] = value
  return config


def run_cli(*args, timeout=600):
  """Run `python -m cnnlab.cli ARGS` as a user would; returns CompletedProcess."""
  env = dict(os.environ, PYTHONPATH=REPO, CNNLAB_JAX_CACHE="")
  return subprocess.run([sys.executable, "-m", "cnnlab.cli", *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
  """Workdir of one finished smoke training (trained once per test session, in-process)."""
  if not os.path.isdir(DATA_DIR):
    pytest.skip(f"Fashion-MNIST IDX files not in {DATA_DIR}")
  from cnnlab.train import train_and_evaluate
  workdir = str(tmp_path_factory.mktemp("smoke_run"))
  results = train_and_evaluate(smoke_config(), workdir, log=lambda *a: None)
  return workdir, results


@pytest.fixture(autouse=True)
def _close_figures():
  """Tests inspect returned figures without saving them; close them so none accumulate."""
  yield
  if "matplotlib.pyplot" in sys.modules:
    sys.modules["matplotlib.pyplot"].close("all")
