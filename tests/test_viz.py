"""Figures from the checkpoints of the shared smoke training (viz never trains)."""

import json
import os

import jax
import ml_collections
import numpy as np
import pytest
from PIL import Image

from cnnlab import files, rundir
from cnnlab.inspect import inputs, layers, plots, predict, restore
from cnnlab.inspect.report import Figures, write_figures
from cnnlab.train import state as state_lib
from cnnlab.errors import UserError
from cnnlab.models import MODELS
from conftest import needs_data, run_cli, smoke_config

FIGURES = {"conv1_kernels.png", "conv1_hist.png", "feature_maps_conv1.png",
           "feature_maps_conv2.png", "curves.png", "confusion.png", "mistakes.png", "model.png"}


@pytest.fixture(scope="module")
def restored(smoke_run):
  return restore.load_run(smoke_run[0])


def panels(fig):
  """Axes that show an image (grid panels), whatever else the figure holds."""
  return [ax for ax in fig.axes if ax.images]


def test_viz_writes_every_figure_as_a_sensible_png(smoke_run, tmp_path, monkeypatch):
  logs, drawn, save = [], {}, plots.save
  monkeypatch.setattr(plots, "save", lambda fig, path: save(drawn.setdefault(
      os.path.basename(path), fig), path))
  paths = write_figures(smoke_run[0], str(tmp_path / "figs"),
                        Figures(mistakes=8, kernel_range="max"), log=logs.append)
  assert {os.path.basename(p) for p in paths} == FIGURES == set(drawn)
  # --kernel_range=max: the colour bar spans +-max |w| of the kernels shown (conv1 has one
  # input channel, so the panels are the weights themselves).
  shown = panels(drawn["conv1_kernels.png"])
  top = max(float(np.abs(ax.images[0].get_array()).max()) for ax in shown)
  (bar,) = [ax for ax in drawn["conv1_kernels.png"].axes if not ax.images]
  assert len(shown) == 64 and bar.get_ylim() == pytest.approx((-top, top), rel=1e-6)
  assert bar.get_ylabel() == "weight (+-max |w|)"
  for path in paths:
    with open(path, "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n", path
    with Image.open(path) as im:
      im.verify()
    with Image.open(path) as im:
      assert im.format == "PNG" and 300 <= im.width <= 2000 and 150 <= im.height <= 2000, path
    assert 5_000 < os.path.getsize(path) < 1_000_000, path
  assert any("conv1 kernel (3, 3, 1, 32) trained" in line for line in logs)


@pytest.mark.slow
def test_kernel_grid_is_trained_above_untrained_with_checkpoint_statistics(smoke_run, restored):
  import orbax.checkpoint as ocp
  config, _, state, _ = restored
  step = smoke_run[1]["best_step"]
  raw = ocp.StandardCheckpointer().restore(
      os.path.join(smoke_run[0], "checkpoints", str(step), "state"))
  direct = np.asarray(raw["state"]["params"]["conv1"]["kernel"])
  kernel = layers.kernel_of(state.params, "conv1")
  assert kernel.shape == (3, 3, 1, 32) and state.params["conv1"]["bias"].shape == (32,)
  stats = plots.kernel_stats(kernel)
  assert stats["mean"] == pytest.approx(float(direct.mean()), abs=1e-7)
  assert stats["std"] == pytest.approx(float(direct.std()), rel=1e-6)
  assert (stats["min"], stats["max"]) == pytest.approx((direct.min(), direct.max()))

  untrained = layers.kernel_of(state_lib.build(config)[1].params, "conv1")
  assert not np.allclose(kernel, untrained)
  fig = plots.kernel_grid(kernel, untrained)
  shown = panels(fig)
  assert len(shown) == 64  # 2x16 trained + 2x16 untrained
  np.testing.assert_allclose(shown[5].images[0].get_array(), direct[:, :, 0, 5], rtol=1e-6)
  np.testing.assert_allclose(shown[32 + 5].images[0].get_array(), untrained[:, :, 0, 5])
  assert shown[0].images[0].get_clim() == (-0.5, 0.5)
  assert all(ax.get_subplotspec().get_geometry()[:2] == (2, 16) for ax in shown)
  hist = plots.weight_histograms(kernel, untrained)
  assert len(hist.axes) == 2
  assert f"mean {stats['mean']:.4f}, std {stats['std']:.4f}" in hist.axes[0].get_title()


def test_feature_maps_of_the_ankle_boot(restored):
  config, model, state, _ = restored
  images, labels = inputs.dataset_images(config, "train")
  x, label = inputs.pick(images, labels, 0, "train")
  assert label == 9  # training image 0 is the ankle boot
  maps = layers.capture(model, state, x)
  assert maps["conv1"].shape == (1, 28, 28, 32) and maps["conv2"].shape == (1, 14, 14, 64)
  assert list(maps)[:4] == ["conv1", "pool1", "conv2", "pool2"]  # forward order
  for name, grid in (("conv1", (4, 8)), ("conv2", (8, 8))):
    fig = plots.feature_map_grid(maps[name], name)
    shown = panels(fig)
    assert len(shown) == grid[0] * grid[1]
    assert shown[0].get_subplotspec().get_geometry()[:2] == grid
    np.testing.assert_allclose(shown[-1].images[0].get_array(), maps[name][0, :, :, -1])


def test_curves_confusion_and_mistakes(smoke_run, restored):
  config, _, state, _ = restored
  history = rundir.Run(smoke_run[0]).history()
  fig = plots.training_curves(history)
  assert len(fig.axes) == 2 and "best epoch" in " ".join(
      t.get_text() for t in fig.axes[0].get_legend().get_texts())
  images, labels = inputs.dataset_images(config, "validation")
  probs, pred = predict.predict_split(state, images, 200)
  counts = plots.confusion_counts(labels, pred, 10)
  assert counts.sum() == len(labels) == 512
  assert np.trace(counts) / counts.sum() == pytest.approx(smoke_run[1]["val_accuracy"], abs=1e-6)
  fig = plots.confusion_figure(counts, predict.class_names(config))
  assert "accuracy" in fig.axes[0].get_title()
  worst = plots.worst_mistakes(probs, labels, 12)
  assert len(worst) == min(12, int((pred != labels).sum()))
  assert all(pred[i] != labels[i] for i in worst)
  assert list(probs[worst].max(-1)) == sorted(probs[worst].max(-1), reverse=True)
  names = predict.class_names(config)
  assert len(panels(plots.mistakes_grid(images, probs, labels, names, worst))) == len(worst)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.slow
def test_layers_and_diagram_for_every_registry_model(name):
  config = smoke_config(model=ml_collections.ConfigDict({"name": name}))
  model, state = state_lib.build(config)  # untrained: the machinery, not the learning, is tested
  table = layers.layer_table(model, state, (28, 28, 1))
  total = sum(int(np.size(a)) for a in jax.tree.leaves(state.params))
  assert sum(r["params"] for r in table) == total
  convs = layers.conv_layers(table, state.params)
  assert layers.select_layers(table, state.params) == convs[:2]
  maps = layers.capture(model, state, np.zeros((1, 28, 28, 1), np.uint8))
  assert [r["name"] for r in table] == list(maps)
  for conv in convs:
    assert maps[conv].ndim == 4
    assert len(panels(plots.feature_map_grid(maps[conv], conv))) == min(64, maps[conv].shape[-1])
  fig = plots.model_diagram(table, (28, 28, 1), name)
  assert f"{total:,} parameters" in fig.axes[0].get_title()
  with pytest.raises(UserError, match="conv layers: " + (", ".join(convs) or "none")):
    layers.select_layers(table, state.params, ["nope"], name)


def test_textbook_table_matches_the_course_summary(restored):
  _, model, state, _ = restored
  table = layers.layer_table(model, state, (28, 28, 1))
  assert [(r["name"], r["shape"], r["params"]) for r in table] == [
      ("conv1", (28, 28, 32), 320), ("pool1", (14, 14, 32), 0), ("conv2", (14, 14, 64), 18496),
      ("pool2", (7, 7, 64), 0), ("flatten", (3136,), 0), ("dense1", (100,), 313700),
      ("dropout", (100,), 0), ("output", (10,), 1010)]


def test_unknown_layer_lists_the_valid_ones(smoke_run, tmp_path):
  with pytest.raises(UserError, match=r"'conv3' \(did you mean 'conv.'\?\); its conv layers: "
                                      r"conv1, conv2"):
    write_figures(smoke_run[0], str(tmp_path), Figures(layers=("conv3",)))
  with pytest.raises(UserError, match="out of range"):
    write_figures(smoke_run[0], str(tmp_path), Figures(index=60_000))


@pytest.mark.slow
def test_viz_shell_success_and_errors(smoke_run, tmp_path):
  out, picture = tmp_path / "figs", str(tmp_path / "boot.jpg")
  boot = np.zeros((60, 40, 3), np.uint8) + 250  # a dark block on white: gets inverted
  boot[10:50, 5:35] = 30
  Image.fromarray(boot).save(picture)
  done = run_cli("viz", f"--workdir={smoke_run[0]}", f"--out={out}", "--layer=conv2",
                 f"--image={picture}", "--mistakes=4")
  assert done.returncode == 0, done.stderr
  printed = done.stdout.split()
  assert {os.path.basename(p) for p in printed} == {
      "conv2_kernels.png", "conv2_hist.png", "feature_maps_conv2.png", "curves.png",
      "confusion.png", "mistakes.png", "model.png"}
  assert all(os.path.exists(p) for p in printed)
  assert "conv2 kernel (3, 3, 32, 64) trained" in done.stderr

  bad = run_cli("viz", f"--workdir={smoke_run[0]}", "--layer=dense1", f"--out={out}")
  assert bad.returncode == 2
  lines = bad.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("cnnlab: error:"), bad.stderr
  assert "conv1, conv2" in lines[0] and "Traceback" not in bad.stderr


def test_notebook_is_valid_and_calls_existing_functions():
  import ast
  import json
  import re

  from conftest import REPO
  path = os.path.join(REPO, "notebooks", "explore.ipynb")
  with open(path) as f:
    nb = json.load(f)
  assert nb["nbformat"] == 4 and nb["cells"]
  import nbformat  # a dev dependency: the validation always runs
  nbformat.validate(nbformat.reads(json.dumps(nb), as_version=4))
  code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
  ast.parse("\n".join(line for line in code.splitlines() if not line.startswith("%")))
  modules = {"plots": plots, "predict": predict, "layers": layers, "inputs": inputs,
             "restore": restore, "state_lib": state_lib}
  used = set(re.findall(r"\b(plots|predict|layers|inputs|restore|state_lib)\.(\w+)\(", code))
  assert ("plots", "kernel_grid") in used and ("plots", "feature_map_grid") in used
  assert all(hasattr(modules[m], name) for m, name in used), used


@pytest.mark.parametrize("name", ["fashion_dnn", "fashion_cnn_bn"])
@needs_data
@pytest.mark.slow
def test_viz_of_other_registry_models(name, tmp_path):
  """A checkpoint of an untrained model of another kind goes through the same code path."""
  from cnnlab import checkpoint
  from cnnlab.train import step as step_lib
  from cnnlab.train import state as state_lib
  config = smoke_config(model=ml_collections.ConfigDict({"name": name}))
  workdir = str(tmp_path / name)
  os.makedirs(workdir)
  files.write_json(os.path.join(workdir, "config.json"), json.loads(config.to_json()))
  _, state = state_lib.build(config)
  mngr = checkpoint.manager(rundir.Run(workdir).checkpoints_dir)
  checkpoint.save(mngr, 0, state, step_lib.zero_sums(), {})
  mngr.close()
  logs = []
  paths = write_figures(workdir, figures=Figures(mistakes=4), log=logs.append)
  convs = {"fashion_dnn": [], "fashion_cnn_bn": ["conv1", "conv2"]}[name]
  expected = {"confusion.png", "mistakes.png", "model.png"}  # no epoch recorded: no curves
  assert "no epoch has finished yet, so there are no training curves (curves.png)" in logs
  if convs:
    expected |= {"conv1_kernels.png", "conv1_hist.png", "feature_maps_conv1.png",
                 "feature_maps_conv2.png"}
  else:
    assert any("no conv layer" in line for line in logs)
  assert {os.path.basename(p) for p in paths} == expected
