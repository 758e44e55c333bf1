"""The notebooks run top to bottom under nbclient on CPU, as a user's Run all does.

Each executed notebook is shared by the tests that read its outputs (one kernel, one training
per notebook): explore.ipynb trains the smoke config itself into a workdir holding no run;
colab_tpu.ipynb trains the smoke config for one epoch (CNNLAB_NOTEBOOK_TINY=1). Their install
cells find cnnlab importable here and install nothing. CI also runs colab_tpu.ipynb under
Colab's TPU-runtime versions (.ci/run, ci/colab-tpu-pins.txt).
"""

import json
import os

import pytest

from conftest import REPO, needs_data

nbformat = pytest.importorskip("nbformat", reason="dev extra not installed")
nbclient = pytest.importorskip("nbclient", reason="dev extra not installed")

NOTEBOOKS = sorted(f for f in os.listdir(os.path.join(REPO, "notebooks")) if f.endswith(".ipynb"))
NOTHING_TO_INSTALL = f"cnnlab from {REPO}: every dependency is installed, nothing to install\n"


def read(name):
  return nbformat.read(os.path.join(REPO, "notebooks", name), as_version=4)


def execute(name, **env):
  """Run a notebook in a fresh kernel (cwd notebooks/, as Jupyter does); returns its outputs."""
  nb = read(name)
  client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                   resources={"metadata": {"path": os.path.join(REPO, "notebooks")}})
  client.execute(env=dict(os.environ, **env))
  outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
  text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
  pngs = [o for o in outputs if "image/png" in o.get("data", {})]
  return nb, text, pngs


@pytest.fixture(scope="module")
def explore(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("explore") / "run")  # holds no run: the notebook trains
  return (workdir, *execute("explore.ipynb", CNNLAB_WORKDIR=workdir))


@pytest.fixture(scope="module")
def colab():
  return execute("colab_tpu.ipynb", CNNLAB_NOTEBOOK_TINY="1")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_valid_and_starts_with_the_same_install_cell(name):
  nb = read(name)
  nbformat.validate(nb)
  install = [c.source for c in nb.cells if c.cell_type == "code"][0]
  assert install == [c.source for c in read("explore.ipynb").cells if c.cell_type == "code"][0]
  assert install.startswith("# Install cnnlab without replacing Colab's jax/jaxlib")


@needs_data
@pytest.mark.slow
@pytest.mark.timeout(900)  # a kernel, imports and a smoke training: ~1 min, minutes when loaded
def test_explore_trains_a_smoke_run_when_there_is_none_and_draws_every_figure(explore):
  workdir, nb, text, pngs = explore
  assert text.startswith(NOTHING_TO_INSTALL)
  with open(os.path.join(workdir, "results.json")) as f:
    accuracy = json.load(f)["test_accuracy"]
  assert f"smoke run in {workdir}: test accuracy {accuracy:.4f}\n" in text
  assert f"{workdir} textbook_cnn checkpoint step 128 conv layers: ['conv1', 'conv2']" in text
  assert "conv2    Conv 3x3, 64 filters         (14, 14, 64)      18,496" in text
  # model, kernels (course range), kernels (max), histograms, 2 feature maps, curves,
  # confusion, mistakes, probabilities
  assert len(pngs) == 10
  assert "true: Bag\n" in text  # validation image 0


@needs_data
@pytest.mark.slow
def test_the_notebooks_smoke_run_is_the_smoke_run_of_the_cli(explore, smoke_run):
  """Same config and seed in a notebook kernel: bit-identical metrics."""
  with open(os.path.join(explore[0], "metrics.jsonl")) as f:
    history = [json.loads(line) for line in f]
  with open(os.path.join(smoke_run[0], "metrics.jsonl")) as f:
    expected = [json.loads(line) for line in f]
  assert history == expected and len(history) == 2


@needs_data
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_colab_tpu_notebook_runs_on_cpu_in_float32(colab):
  nb, text, pngs = colab
  assert text.startswith(NOTHING_TO_INSTALL)  # the install cell is a no-op here
  assert "backend: cpu | devices: " in text and "no TPU here (cpu)" in text
  assert "dtype: float32 | batch: 32 | data: default (IDX files or TFDS)\n" in text
  assert "test accuracy" in text and "conv1 kernel {'shape': (3, 3, 1, 32)" in text
  assert len(pngs) == 3  # curves, kernels, feature maps
