"""Notebooks are valid and run top to bottom on CPU (with a tiny config)."""

import os

import pytest

from conftest import REPO, needs_data

pytestmark = pytest.mark.slow  # the quick tier skips it; --all and CI run it

nbformat = pytest.importorskip("nbformat", reason="dev extra not installed")
nbclient = pytest.importorskip("nbclient", reason="dev extra not installed")

NOTEBOOKS = sorted(f for f in os.listdir(os.path.join(REPO, "notebooks")) if f.endswith(".ipynb"))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_valid_json(name):
  nb = nbformat.read(os.path.join(REPO, "notebooks", name), as_version=4)
  nbformat.validate(nb)
  assert any(c.cell_type == "code" for c in nb.cells)


@needs_data
def test_colab_tpu_notebook_runs_on_cpu(monkeypatch):
  monkeypatch.setenv("CNNLAB_NOTEBOOK_TINY", "1")
  monkeypatch.setenv("CNNLAB_JAX_CACHE", "")
  monkeypatch.setenv("PYTHONPATH", REPO)
  path = os.path.join(REPO, "notebooks", "colab_tpu.ipynb")
  nb = nbformat.read(path, as_version=4)
  nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                          resources={"metadata": {"path": os.path.dirname(path)}}).execute()
  text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []) if o.get("output_type") == "stream")
  assert "no TPU here (cpu)" in text  # the guarded TPU cell ran and said so
  assert "kernel mean" in text
