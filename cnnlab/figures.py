"""Every figure of a run, written to disk: what `./launch.sh viz` does, callable in-process.

Reads the run's checkpoints and data only (viz never trains); all inputs are checked before
anything is drawn, so a mistake costs seconds, not a half-written figures directory.
"""

import os
import sys

from cnnlab import data, predict, runs, viz
from cnnlab.errors import UserError


def write_figures(workdir, out=None, which="best", layers=(), split="train", index=0,
                  image=None, invert="auto", mistakes=16, data_dir=None, log=None):
  """Write every figure of a run; returns their paths. Checks all inputs before drawing."""
  log = log or (lambda msg: print(msg, file=sys.stderr))
  config = runs.load_config(workdir)
  model, abstract = predict.abstract_model(config, workdir)
  shape = data.image_shape(config.dataset)
  table = predict.layer_table(model, abstract, shape)
  layers = predict.select_layers(table, abstract["params"], layers, config.model.name)
  names = predict.class_names(config)
  if mistakes < 0:
    raise UserError(f"--mistakes={mistakes} must be >= 0")
  if image:
    x, inverted = predict.load_image(image, shape, invert)
    what = f"{os.path.basename(image)}{' (inverted)' if inverted else ''}"
  else:
    x, label = predict.pick(*predict.dataset_images(config, split, data_dir), index, split)
    what = f"{split} image {index} ({names[label]})"
  out = predict.figures_dir(workdir, out)
  _, model, state, meta = predict.load_run(workdir, which)  # the slow part: build + restore
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
