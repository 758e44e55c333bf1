"""`viz`: draw what a trained run learned, from its checkpoints (it never trains).

  ./launch.sh viz --workdir=runs/t1 [--layer=conv1,conv2] [--index=0 --split=train | --image=F]

writes PNGs into <workdir>/figures/ (or --out) and prints their paths, one per line.
"""

import os
import sys

from absl import flags

from cnnlab.errors import UserError

_WORKDIR = flags.DEFINE_string("workdir", None, "run directory of a training run (required)")
_WHICH = flags.DEFINE_enum("which", "best", ["best", "latest"],
                           "checkpoint: best (lowest validation loss) or latest")
_LAYER = flags.DEFINE_list("layer", [], "conv layers to draw (kernels of the first, feature maps "
                           "of each); default: the model's first two conv layers")
_INDEX = flags.DEFINE_integer("index", 0, "image for the feature maps: index in --split "
                              "(train image 0 is the course's ankle boot)")
_SPLIT = flags.DEFINE_string("split", "train", "split of --index: train (the training file in "
                             "its own order) or validation (the held-out part)")
_IMAGE = flags.DEFINE_string("image", None, "picture file (PNG/JPEG) for the feature maps "
                             "instead of --index")
_INVERT = flags.DEFINE_enum("invert", "auto", ["auto", "yes", "no"],
                            "invert --image (auto: when its border is light)")
_MISTAKES = flags.DEFINE_integer("mistakes", 16, "how many of the worst validation mistakes")
_OUT = flags.DEFINE_string("out", None, "directory for the figures (default: WORKDIR/figures)")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "directory with the IDX files (default: the "
                                "run's config.data_dir)")


def write_figures(workdir, out=None, which="best", layers=(), split="train", index=0,
                  image=None, invert="auto", mistakes=16, data_dir=None, log=None):
  """Write every figure of a run; returns their paths. Checks all inputs before drawing."""
  from cnnlab import data, predict, runs, viz
  log = log or (lambda msg: print(msg, file=sys.stderr))
  config, model, state, meta = predict.load_run(workdir, which)
  shape = data.image_shape(config.dataset)
  table = predict.layer_table(model, state, shape)
  layers = predict.select_layers(table, state.params, layers, config.model.name)
  names = predict.class_names(config)
  if image:
    x, inverted = predict.load_image(image, shape, invert)
    what = f"{os.path.basename(image)}{' (inverted)' if inverted else ''}"
  else:
    x, label = predict.pick(*predict.dataset_images(config, split, data_dir), index, split)
    what = f"{split} image {index} ({names[label]})"
  if mistakes < 0:
    raise UserError(f"--mistakes={mistakes} must be >= 0")
  out = predict.figures_dir(workdir, out)
  epoch = {r["step"]: r["epoch"] for r in meta.get("history", [])}.get(meta.get("step"))
  trained = f"trained ({which}" + (f", epoch {epoch})" if epoch else ")")
  untrained = f"untrained (seed {config.seed})"
  paths = []
  put = lambda fig, name: paths.append(viz.save(fig, os.path.join(out, name)))

  if layers:
    first = layers[0]
    _, init = runs.build(config)
    k1, k0 = predict.kernel_of(state.params, first), predict.kernel_of(init.params, first)
    put(viz.kernel_grid(k1, k0, first, labels=(trained, untrained)), f"{first}_kernels.png")
    put(viz.weight_histograms(k1, k0, first, labels=(trained, untrained)), f"{first}_hist.png")
    for kernel, label in ((k1, trained), (k0, untrained)):
      s = viz.kernel_stats(kernel)
      log(f"{first} kernel {s['shape']} {label}: mean {s['mean']:.4f} std {s['std']:.4f} "
          f"range {s['min']:.3f}..{s['max']:.3f}")
    maps = predict.capture(model, state, x)
    for name in layers:
      dims = "x".join(map(str, maps[name].shape[1:]))
      put(viz.feature_map_grid(maps[name], name, title=f"{name} feature maps ({dims}) of {what}"),
          f"feature_maps_{name}.png")
  else:
    log(f"model {config.model.name!r} has no conv layer: no kernel or feature-map figures")

  put(viz.training_curves(runs.history(workdir)), "curves.png")
  vx, vy = predict.dataset_images(config, "validation", data_dir)
  probs, pred = predict.predict_split(state, vx, config.eval_batch_size)
  put(viz.confusion_figure(viz.confusion_counts(vy, pred, len(names)), names), "confusion.png")
  worst = viz.worst_mistakes(probs, vy, mistakes)
  put(viz.mistakes_grid(vx, probs, vy, names, worst), "mistakes.png")
  put(viz.model_diagram(table, shape, config.model.name), "model.png")
  return paths


def main(argv):
  if len(argv) > 1:
    raise UserError(f"unexpected argument {argv[1]!r}; flags look like --name=value")
  if not _WORKDIR.value:
    raise UserError("pass --workdir=DIR, the directory of a training run")
  if _IMAGE.value and flags.FLAGS["index"].present:
    raise UserError("pass either --image or --index, not both")
  from cnnlab import cli
  cli.setup_jax()
  for path in write_figures(_WORKDIR.value, _OUT.value, _WHICH.value, _LAYER.value,
                            _SPLIT.value, _INDEX.value, _IMAGE.value, _INVERT.value,
                            _MISTAKES.value, _DATA_DIR.value):
    print(path)
