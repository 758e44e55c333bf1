"""Shared fixtures: the real Fashion-MNIST files and one short real training per session.

Tests needing the data are skipped (with the reason) only where the IDX files are absent;
CI installs them (.ci/run), so there every test runs.

Tiers: `./launch.sh test` runs the quick tier (everything not marked `slow`), `./launch.sh test
--all` every test (CI). Every test has a time limit (pytest-timeout, pyproject.toml), and all of
them, in-process and in the subprocesses they start, share one persistent compilation cache
(.jax_cache/tests/<worker>, or $CNNLAB_JAX_CACHE): a rerun compiles little. `./launch.sh
test` runs one pytest-xdist worker per core, a whole file per worker at a time (module
fixtures run once), the longest files first (LONGEST_FIRST) so that no worker is left alone
with a long file at the end. Tests of cold compilation and of the cache itself make their own
empty caches.
"""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.environ.get("CNNLAB_TEST_DATA_DIR", "/usr/share/datasets/fashion-mnist")
sys.path.insert(0, REPO)  # experiments/ (configs) is not an installed package
# One cache per pytest-xdist worker: JAX writes cache entries in place (no rename), so a worker
# could read another's half-written entry; each worker shares its cache with its subprocesses.
os.environ.setdefault("CNNLAB_JAX_CACHE", os.path.join(
    REPO, ".jax_cache", "tests", os.environ.get("PYTEST_XDIST_WORKER", "main")))


def _use_shared_cache():
  from cnnlab import compilation
  compilation.use_persistent_cache()  # reads CNNLAB_JAX_CACHE, as every subprocess does


_use_shared_cache()


# The files that take longest (each ~1-2.5 min of one core on a fresh clone), started first.
LONGEST_FIRST = ["test_bad_input", "test_zoo", "test_multiprocess", "test_train", "test_numbers",
                 "test_bench", "test_scale", "test_fast_layers", "test_sweep", "test_notebooks",
                 "test_viz", "test_reliability_kill", "test_reliability", "test_resume_loop"]


def pytest_collection_modifyitems(items):
  """Longest files first, the rest in their usual order (xdist deals out files in this order)."""
  rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.module.__name__, len(rank)))


def has_data():
  from cnnlab.input import registered
  return registered.has_idx_files(DATA_DIR, "train") and registered.has_idx_files(DATA_DIR, "test")


needs_data = pytest.mark.skipif(not has_data(),
                                reason=f"Fashion-MNIST IDX files not in {DATA_DIR} "
                                       "(apt-get install dataset-fashion-mnist)")


def _needs_torch():
  """Skip with the reason where torch (the `bench` extra) is absent; fail instead where
  CNNLAB_REQUIRE_EXTRAS names torch (CI's extras row installs it and must run these)."""
  import importlib.util
  required = "torch" in os.environ.get("CNNLAB_REQUIRE_EXTRAS", "").split(",")
  if required or importlib.util.find_spec("torch") is not None:
    return lambda f: f  # required and absent: the test fails on `import torch`
  return pytest.mark.skip(reason="torch is not installed: pip install -e '.[bench]' (a CPU "
                                 "build) runs this test")


needs_torch = _needs_torch()


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
  env = dict(os.environ, PYTHONPATH=REPO)
  return subprocess.run([sys.executable, "-m", "cnnlab.cli", *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout)


def one_line_error(proc, *needles):
  """Assert a command failed as a user mistake should: exit 2, one `cnnlab: error:` line
  holding each of `needles`, no traceback; returns the line."""
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert proc.returncode == 2 and len(lines) == 1, (proc.returncode, proc.stderr[-3000:])
  assert lines[0].startswith("cnnlab: error:") and "Traceback" not in proc.stderr
  for needle in needles:
    assert needle in lines[0], lines[0]
  return lines[0]


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
  """Workdir of one finished smoke training (trained once per test session, in-process)."""
  if not has_data():
    pytest.skip(f"Fashion-MNIST IDX files not in {DATA_DIR}")
  from cnnlab.train import train_and_evaluate
  workdir = str(tmp_path_factory.mktemp("smoke_run"))
  results = train_and_evaluate(smoke_config(), workdir, log=lambda *a: None)
  return workdir, results


TINY = dict(train_size=512, validation_size=256, test_size=256, eval_batch_size=64,
            batch_size=32)


def tiny(num_epochs=3, **overrides):
  """The reliability tests' tiny run: 512 real images, 16 steps an epoch."""
  return smoke_config(num_epochs=num_epochs, **TINY, **overrides)


@pytest.fixture(scope="session")
def ref(tmp_path_factory):
  """A finished 3-epoch tiny run (steps 32 and 48 kept), trained in-process once per session
  (the reliability and kill tests compare their runs with it; nobody writes to it)."""
  if not has_data():
    pytest.skip(f"Fashion-MNIST IDX files not in {DATA_DIR}")
  from cnnlab.train import train_and_evaluate
  workdir = str(tmp_path_factory.mktemp("ref"))
  train_and_evaluate(tiny(), workdir, log=lambda *a: None)
  return workdir


@pytest.fixture(autouse=True)
def _close_figures():
  """Tests inspect returned figures without saving them; close them so none accumulate."""
  yield
  if "matplotlib.pyplot" in sys.modules:
    sys.modules["matplotlib.pyplot"].close("all")
