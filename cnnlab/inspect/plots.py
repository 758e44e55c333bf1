"""Figures of what a trained network learned, drawn from checkpoints (never by retraining).

Each function returns a matplotlib Figure (so a notebook shows it inline and tests can count
its panels); `save` writes one to disk. Arrays come in from the other cnnlab.inspect modules;
nothing here reads files or runs a model, so every figure works for any model of the registry.
"""

import math

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from cnnlab import rundir

KERNEL_RANGE = (-0.5, 0.5)  # the course's fixed colour range for first-layer kernels
IMAGE_CMAP, IMAGE_RANGE = "gray", (0, 255)  # input images as the data has them: light on black
IMAGE_COLOURS = {"cmap": IMAGE_CMAP, "vmin": IMAGE_RANGE[0], "vmax": IMAGE_RANGE[1]}


def save(fig, path, dpi=100):
  """Write `fig` (format from the extension) and close it; returns `path`."""
  fig.savefig(path, dpi=dpi, bbox_inches="tight")
  plt.close(fig)
  return path


def kernel_stats(kernel):
  """Shape, mean, std, min and max of a layer's weights (plain floats, for titles and tests)."""
  k = np.asarray(kernel, np.float64)
  return {"shape": k.shape, "mean": float(k.mean()), "std": float(k.std()),
          "min": float(k.min()), "max": float(k.max())}


def _grid(fig, cols, images, colours=None, labels=None, fontsize=7, frame=None):
  """`images` in rows of `cols` panels. colours: imshow's vmin/vmax/cmap (default viridis,
  each panel its own range); frame (top, right): tight panels under a title band 1 - top."""
  axes = fig.subplots(math.ceil(len(images) / cols), cols, squeeze=False)
  if frame is not None:
    top, right = frame
    fig.subplots_adjust(left=0.01, right=right, bottom=0.01, top=top, wspace=0.1, hspace=0.1)
  colours = {"cmap": "viridis", **(colours or {})}
  for i, ax in enumerate(axes.ravel()):
    if i < len(images):
      ax.imshow(images[i], interpolation="nearest", **colours)
      if labels is not None:
        ax.set_title(labels[i], fontsize=fontsize, pad=2)
      ax.set_axis_off()
    else:
      ax.remove()  # only real panels stay in fig.axes
  return axes


def _kernel_images(kernel, max_panels):
  """HWIO kernel -> list of (H, W) images, one per filter (mean over input channels)."""
  k = np.asarray(kernel)
  return [k[:, :, :, j].mean(axis=2) for j in range(min(k.shape[3], max_panels))]


def kernel_grid(trained, untrained, layer="conv1", cols=16, max_panels=64, labels=None,
                scale="course"):
  """The filters of a conv layer, trained above untrained, with one colour bar for both:
  scale="course" is the course's fixed range -0.5..0.5, "max" the kernels' own +-max |w|."""
  labels = labels or ("trained", "untrained")
  dims, n = np.shape(trained), min(np.shape(trained)[3], max_panels)
  rows = math.ceil(n / cols)
  height = rows * 0.62 + 0.45  # per half: panels plus a title band
  fig = plt.figure(figsize=(cols * 0.6 + 0.9, 2 * height + 0.2))
  top = float(max(np.abs(trained).max(), np.abs(untrained).max()))
  lo, hi = KERNEL_RANGE if scale == "course" else (-top, top)
  for sub, kernel, label in zip(fig.subfigures(2, 1), (trained, untrained), labels):
    axes = _grid(sub, cols, _kernel_images(kernel, max_panels), {"vmin": lo, "vmax": hi},
                 frame=(1 - 0.4 / height, 0.9))
    s = kernel_stats(kernel)
    sub.suptitle(f"{label}: mean {s['mean']:.3f}, std {s['std']:.3f}", fontsize=10)
  bar = fig.colorbar(axes[0, 0].images[0], cax=fig.add_axes([0.92, 0.08, 0.015, 0.84]))
  bar.set_label("weight (" + ("the course's fixed range" if scale == "course" else "+-max |w|")
                + ")")
  extra = f", mean over {dims[2]} input channels" if dims[2] > 1 else ""
  more = f", first {n} of {dims[3]}" if n < dims[3] else ""
  fig.suptitle(f"{layer} kernels ({'x'.join(map(str, dims))}{extra}{more}); colour range "
               f"{lo:.3g}..{hi:.3g}\n{_change_note(trained, untrained, lo, hi)}", fontsize=10,
               y=1.12)
  return fig


def _change_note(trained, untrained, lo, hi):
  """How far training moved the weights: why trained and untrained kernels may look alike."""
  change = float(np.mean(np.abs(np.asarray(trained) - np.asarray(untrained))))
  rel = change / max(float(np.mean(np.abs(untrained))), 1e-12)
  return (f"training moved each weight by {change:.3f} on average, {change / (hi - lo):.0%} of "
          f"the colour range ({rel:.0%} of an untrained weight's size)"
          + (": too little to see, so both look alike" if change < 0.1 * (hi - lo) else ""))


def weight_histograms(trained, untrained, layer="conv1", labels=None):
  """Weight histograms of a layer, trained vs untrained, mean and std in the titles."""
  labels = labels or ("trained", "untrained")
  fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=False)
  lo = min(np.min(trained), np.min(untrained))
  hi = max(np.max(trained), np.max(untrained))
  bins = np.linspace(lo, hi, 41)
  for ax, kernel, label in zip(axes, (trained, untrained), labels):
    s = kernel_stats(kernel)
    ax.hist(np.ravel(kernel), bins=bins, color="tab:blue" if label == labels[0] else "tab:gray")
    ax.set_title(f"{layer} {label}: mean {s['mean']:.4f}, std {s['std']:.4f}", fontsize=10)
    ax.set_xlabel("weight")
    ax.set_ylabel("count")
  fig.tight_layout()
  return fig


def feature_map_grid(maps, layer="conv1", cols=8, max_panels=64, title=None):
  """One image's feature maps (1, H, W, C) of a layer: 32 -> 4x8, 64 -> 8x8 panels.

  Each panel is labelled with its channel number and has its own colour scale.
  """
  m = np.asarray(maps)[0]
  n = min(m.shape[-1], max_panels)
  rows = math.ceil(n / cols)
  height = rows * 1.3 + 0.6
  fig = plt.figure(figsize=(cols * 1.1, height))
  _grid(fig, cols, [m[:, :, j] for j in range(n)], labels=[f"ch {j}" for j in range(n)],
        fontsize=8, frame=(1 - 0.6 / height, 0.99))
  more = f", first {n} of {m.shape[-1]}" if n < m.shape[-1] else ""
  fig.suptitle((title or f"{layer} feature maps ({'x'.join(map(str, m.shape))}{more})")
               + "\nchannel number above each map; each map has its own colour scale",
               fontsize=10)
  return fig


def training_curves(history):
  """Train/validation loss and accuracy per epoch; the best (lowest val loss) epoch marked."""
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
  if not history:
    for ax in axes:
      ax.text(0.5, 0.5, "no epochs recorded", ha="center", va="center")
    return fig
  epochs = [r["epoch"] for r in history]
  best = rundir.best(history)
  for ax, key in zip(axes, ("loss", "accuracy")):
    ax.plot(epochs, [r[f"train_{key}"] for r in history], "o-", label="train")
    ax.plot(epochs, [r[f"val_{key}"] for r in history], "s-", label="validation")
    ax.axvline(best["epoch"], color="gray", ls="--", lw=1, label=f"best epoch {best['epoch']}")
    ax.plot([best["epoch"]], [best[f"val_{key}"]], "*", ms=14, color="tab:red")
    ax.set_xlabel("epoch")
    ax.set_ylabel(key)
    ax.set_xticks(epochs if len(epochs) <= 20 else epochs[::max(1, len(epochs) // 10)])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  axes[0].set_title(f"loss (best val {best['val_loss']:.4f})")
  axes[1].set_title(f"accuracy (val {best['val_accuracy']:.4f} at best epoch)")
  fig.tight_layout()
  return fig


def confusion_counts(labels, predicted, num_classes):
  """counts[true, predicted] over a split."""
  counts = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(counts, (np.asarray(labels), np.asarray(predicted)), 1)
  return counts


def confusion_figure(counts, names, title="validation"):
  """Confusion matrix (rows true, columns predicted) with the count in every cell."""
  n = len(names)
  fig, ax = plt.subplots(figsize=(0.62 * n + 2.5, 0.55 * n + 1.8))
  ax.imshow(counts, cmap="Blues")
  hi = counts.max() if counts.size else 0
  for i in range(n):
    for j in range(n):
      if counts[i, j]:
        ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                color="white" if counts[i, j] > hi / 2 else "black")
  ax.set_xticks(range(n), names, rotation=45, ha="right", fontsize=8)
  ax.set_yticks(range(n), names, fontsize=8)
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  total = counts.sum()
  acc = np.trace(counts) / total if total else 0.0
  ax.set_title(f"{title}: accuracy {acc:.4f} on {total:,} images", fontsize=10)
  fig.tight_layout()
  return fig


def worst_mistakes(probs, labels, count=16):
  """Indices of the wrong predictions made with the highest confidence, worst first."""
  probs, labels = np.asarray(probs), np.asarray(labels)
  wrong = np.nonzero(probs.argmax(-1) != labels)[0]
  return wrong[np.argsort(-probs[wrong].max(-1), kind="stable")][:count]


def mistakes_grid(images, probs, labels, names, indices, cols=8, split="validation"):
  """The given mistakes with true label, predicted label and its probability."""
  indices = list(indices)
  if not indices:
    fig, ax = plt.subplots(figsize=(4, 1))
    ax.text(0.5, 0.5, f"no mistakes to show ({split} set)", ha="center", va="center")
    ax.set_axis_off()
    return fig
  cols = min(cols, len(indices))
  rows = math.ceil(len(indices) / cols)
  fig = plt.figure(figsize=(cols * 1.7, rows * 2.2 + 0.6))
  labels_txt = [f"#{i} true {names[labels[i]]}\npred {names[probs[i].argmax()]} "
                f"{probs[i].max():.2f}" for i in indices]
  _grid(fig, cols, [np.asarray(images[i]).squeeze() for i in indices], IMAGE_COLOURS,
        labels=labels_txt, fontsize=9)
  fig.suptitle(f"most confident mistakes on the {split} set", fontsize=11)
  fig.tight_layout()
  return fig


def model_diagram(table, input_shape, title="model"):
  """Boxes for the layers in forward order, with output shape and parameter count."""
  rows = [{"name": "input", "kind": "", "shape": tuple(input_shape), "params": 0}] + list(table)
  fig, ax = plt.subplots(figsize=(6.4, 0.62 * len(rows) + 0.9))
  ax.set_xlim(0, 1)
  ax.set_ylim(len(rows) - 0.4, -0.9)
  ax.set_axis_off()
  for i, r in enumerate(rows):
    colour = ("#d8e8f8" if "Conv" in r["kind"] else "#f8e0c8" if "Dense" in r["kind"]
              else "#eeeeee")
    ax.add_patch(matplotlib.patches.FancyBboxPatch(
        (0.03, i - 0.3), 0.94, 0.6, boxstyle="round,pad=0.01", fc=colour, ec="#555555"))
    shape = "x".join(map(str, r["shape"]))
    ax.text(0.06, i, r["name"], va="center", fontsize=10, weight="bold")
    ax.text(0.27, i, r["kind"], va="center", fontsize=8)
    ax.text(0.66, i, shape, va="center", fontsize=9, family="monospace")
    ax.text(0.95, i, f"{r['params']:,}" if i else "params", va="center", ha="right",
            fontsize=9, family="monospace")
    if i:
      ax.annotate("", (0.5, i - 0.3), (0.5, i - 0.7),
                  arrowprops={"arrowstyle": "->", "color": "#555555"})
  total = sum(r["params"] for r in table)
  ax.set_title(f"{title}: {total:,} parameters", fontsize=11)
  return fig


def probability_chart(probs, names, image=None, title=""):
  """Bar chart of all class probabilities of one image, next to the image the model saw
  (H x W or H x W x C, titled with its size)."""
  probs = np.asarray(probs).reshape(-1)
  ncols = 2 if image is not None else 1
  fig, axes = plt.subplots(1, ncols, figsize=(3 * ncols + 4, 3.4), squeeze=False,
                           gridspec_kw={"width_ratios": [1, 2.6][-ncols:]})
  axes = axes.ravel()
  if image is not None:
    shown = np.asarray(image).squeeze()  # (1, H, W, 1) -> (H, W); colour keeps (H, W, 3)
    axes[0].imshow(shown, **IMAGE_COLOURS)
    axes[0].set_title(f"model input ({shown.shape[0]}x{shown.shape[1]})", fontsize=9)
    axes[0].set_axis_off()
  ax = axes[-1]
  best = int(probs.argmax())
  ax.barh(range(len(probs)), probs,
          color=["tab:red" if i == best else "tab:blue" for i in range(len(probs))])
  ax.set_yticks(range(len(probs)), names, fontsize=9)
  ax.invert_yaxis()
  ax.set_xlim(0, 1)
  ax.set_xlabel("probability")
  for i, p in enumerate(probs):
    ax.text(min(p + 0.01, 0.86), i, f"{p:.3f}", va="center", fontsize=8)
  ax.set_title(title or f"{names[best]} ({probs[best]:.3f})", fontsize=10)
  fig.tight_layout()
  return fig


def use_hangul_font():
  """Add an installed font with Hangul glyphs as a fallback; False when there is none."""
  from matplotlib import font_manager
  for f in font_manager.fontManager.ttflist:
    if any(key in f.name for key in ("CJK", "Nanum", "Malgun", "AppleGothic", "Gulim",
                                     "Baekmuk", "UnDotum", "UnBatang")):
      matplotlib.rcParams["font.family"] = ["DejaVu Sans", f.name]
      return True
  return False
