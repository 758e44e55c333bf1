"""What the figures say, read back from the Figure objects: colour bars and their ranges,
channel labels, the colours of images, log axes. Synthetic arrays with known numbers, in-process."""

import matplotlib.figure
import numpy as np
import pytest

from cnnlab.inspect import plots
from cnnlab.sweep import report as sweep_report

NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def split(fig):
  """(image panels, the one colour-bar axis) of a kernel figure."""
  panels = [ax for ax in fig.axes if ax.images]
  (bar,) = [ax for ax in fig.axes if not ax.images]
  return panels, bar


def kernels(step):
  """Untrained weights of |w| = 0.2 with alternating signs; trained = untrained + step."""
  untrained = np.where(np.arange(3 * 3 * 4).reshape(3, 3, 1, 4) % 2, 0.2, -0.2)
  return (untrained + step).astype(np.float32), untrained.astype(np.float32)


def test_kernel_colour_bar_is_the_course_range_and_says_why_the_halves_look_alike():
  fig = plots.kernel_grid(*kernels(0.01), "conv1")
  panels, bar = split(fig)
  assert len(panels) == 8 and bar.get_ylim() == (-0.5, 0.5)
  assert {ax.images[0].get_clim() for ax in panels} == {(-0.5, 0.5)}
  assert bar.get_ylabel() == "weight (the course's fixed range)"
  assert fig._suptitle.get_text() == (
      "conv1 kernels (3x3x1x4); colour range -0.5..0.5\n"
      "training moved each weight by 0.010 on average, 1% of the colour range (5% of an "
      "untrained weight's size): too little to see, so both look alike")


def test_kernel_colour_bar_scaled_to_the_kernels_own_max():
  fig = plots.kernel_grid(*kernels(-0.1), "conv2", scale="max")  # max |w| = 0.3
  panels, bar = split(fig)
  assert bar.get_ylim() == pytest.approx((-0.3, 0.3))
  assert panels[0].images[0].get_clim() == pytest.approx((-0.3, 0.3))
  assert bar.get_ylabel() == "weight (+-max |w|)"
  assert fig._suptitle.get_text() == (  # a visible change: no "look alike"
      "conv2 kernels (3x3x1x4); colour range -0.3..0.3\n"
      "training moved each weight by 0.100 on average, 17% of the colour range (50% of an "
      "untrained weight's size)")


def test_feature_maps_are_labelled_with_their_channel_numbers():
  maps = np.arange(1 * 6 * 6 * 10, dtype=np.float32).reshape(1, 6, 6, 10)
  fig = plots.feature_map_grid(maps, "conv1")
  assert [ax.get_title() for ax in fig.axes] == [f"ch {j}" for j in range(10)]
  np.testing.assert_array_equal(fig.axes[7].images[0].get_array(), maps[0, :, :, 7])
  assert "channel number above each map" in fig._suptitle.get_text()


def test_mistakes_are_drawn_like_every_other_image_light_on_black():
  images = np.arange(4 * 28 * 28, dtype=np.int64).reshape(4, 28, 28, 1).astype(np.uint8)
  probs = np.full((4, 10), 0.02, np.float32)
  probs[:, 9] = 0.82
  labels = np.array([0, 1, 2, 3])
  fig = plots.mistakes_grid(images, probs, labels, NAMES, [2, 0])
  chart = plots.probability_chart(probs[2], NAMES, images[2])
  shown = [ax.images[0] for f in (fig, chart) for ax in f.axes if ax.images]
  assert len(shown) == 3
  assert {(im.get_cmap().name, im.get_clim()) for im in shown} == {("gray", (0, 255))}
  assert [ax.get_title() for ax in fig.axes] == ["#2 true Pullover\npred Ankle boot 0.82",
                                                 "#0 true T-shirt/top\npred Ankle boot 0.82"]
  assert {ax.title.get_fontsize() for ax in fig.axes} == {9}


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3), (1, 64, 48, 1)])
def test_probability_chart_titles_the_input_with_its_own_size(shape):
  """The chart says the size of the image the model saw, not Fashion-MNIST's 28x28 always."""
  image = np.zeros(shape, np.uint8)
  chart = plots.probability_chart(np.full(10, 0.1), NAMES, image)
  height, width = [n for n in shape if n not in (1, 3)][:2]
  assert chart.axes[0].get_title() == f"model input ({height}x{width})"


def test_importing_the_figure_modules_leaves_the_matplotlib_backend_alone():
  """A notebook that imports cnnlab keeps its backend: only the commands choose Agg."""
  import subprocess
  import sys
  code = ("import matplotlib; matplotlib.use('svg'); import cnnlab.inspect.plots, "
          "cnnlab.bench.curves, cnnlab.inspect.report; print(matplotlib.get_backend())")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert proc.stdout.strip() == "svg"


@pytest.mark.parametrize("values,scale", [((1e-4, 3e-4, 1e-3, 3e-3), "log"),
                                          ((0.3, 0.4, 0.5), "linear")])
def test_sweep_plot_puts_log_spaced_values_on_a_log_axis(values, scale, monkeypatch, tmp_path):
  drawn = []
  monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, *a, **k: drawn.append(fig))
  key = "optimizer.learning_rate"
  rows = [{"config": {key: v}, "status": "finished", "val_accuracy": 0.8 + i / 100,
           "test_accuracy": 0.79} for i, v in enumerate(values)]
  sweep_report.plot(str(tmp_path / "results.png"), [key], rows)
  (ax,) = drawn[0].axes
  assert ax.get_xscale() == scale and ax.get_xlabel() == key
  np.testing.assert_allclose(ax.lines[0].get_xdata(), values)
