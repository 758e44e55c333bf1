"""Every figure of a run, written to disk: what `./launch.sh viz` does, callable in-process.

Reads the run's checkpoints and data only (viz never trains); all inputs are checked before
anything is drawn, so a mistake costs seconds, not a half-written figures directory.
An unfinished (interrupted) run is drawn from the step restored (its best epoch, or its latest
good step when no epoch has finished), labelled as such, with a line saying how to resume it;
without a finished epoch there are no training curves to draw.
"""

import os
import sys

from cnnlab import data, rundir
from cnnlab.errors import UserError
from cnnlab.inspect import inputs, plots
from cnnlab.inspect.layers import capture, kernel_of, layer_table, select_layers
from cnnlab.inspect.predict import predict_split
from cnnlab.inspect.restore import abstract_model, load_run
from cnnlab.train import state as state_lib


def write_figures(workdir, out=None, which="best", layers=(), split="train", index=0,
                  image=None, invert="auto", mistakes=16, data_dir=None, log=None,
                  kernel_range="course"):
  """Write every figure of a run; returns their paths. Checks all inputs before drawing."""
  log = log or (lambda msg: print(msg, file=sys.stderr))
  run = rundir.Run(workdir)
  config = run.read_config()
  model, abstract = abstract_model(config, workdir)
  shape = data.image_shape(config)
  table = layer_table(model, abstract, shape)
  layers = select_layers(table, abstract["params"], layers, config.model.name)
  names = data.class_names(config)
  if mistakes < 0:
    raise UserError(f"--mistakes={mistakes} must be >= 0")
  if image:
    x, inverted = inputs.load_image(image, config, invert)
    what = f"{os.path.basename(image)}{' (inverted)' if inverted else ''}"
  else:
    x, label = inputs.pick(*inputs.dataset_images(config, split, data_dir), index, split)
    what = f"{split} image {index} ({names[label]})"
  out = run.figures_dir(out, create=False)  # checked now, created once there is something
  _, model, state, meta = load_run(workdir, which)  # the slow part: build + restore
  out = run.figures_dir(out)
  history = run.history()
  if not run.finished:
    log(f"{workdir} is an unfinished run ({len(history)} of {config.num_epochs} epochs "
        f"finished; drawing its step {meta.get('step')}); resume it with: ./launch.sh train "
        f"--workdir={workdir}")
  paths = []
  put = lambda fig, name: paths.append(plots.save(fig, os.path.join(out, name)))
  if layers:
    labels = (_trained_label(which, history, meta.get("step")), f"untrained (seed {config.seed})")
    _layer_figures(put, config, model, state, layers, x, what, labels, log, kernel_range,
                   data_dir)
  else:
    log(f"model {config.model.name!r} has no conv layer: no kernel or feature-map figures")
  if history:
    put(plots.training_curves(history), "curves.png")
  else:
    log("no epoch has finished yet, so there are no training curves (curves.png)")
  _validation_figures(put, config, state, names, mistakes, data_dir)
  put(plots.model_diagram(table, shape, config.model.name), "model.png")
  return paths


def _trained_label(which, history, step):
  """"trained (best, epoch 3)", or for a step that ends no epoch (an interrupted run's
  latest good step) "trained (latest good step 113, in epoch 2)"."""
  epoch = {r["step"]: r["epoch"] for r in history}.get(step)
  if epoch:
    return f"trained ({which}, epoch {epoch})"
  within = step // history[0]["step"] + 1 if history else 1  # epoch 1 ends at history[0]
  return f"trained (latest good step {step}, in epoch {within})"


def _layer_figures(put, config, model, state, layers, x, what, labels, log, kernel_range,
                   data_dir):
  """Kernels and weight histograms of the first conv layer, feature maps of each."""
  first = layers[0]
  _, init = state_lib.build(config, train_images=_initial_data(config, model, data_dir))
  k1, k0 = kernel_of(state.params, first), kernel_of(init.params, first)
  put(plots.kernel_grid(k1, k0, first, labels=labels, scale=kernel_range),
      f"{first}_kernels.png")
  put(plots.weight_histograms(k1, k0, first, labels=labels), f"{first}_hist.png")
  for kernel, label in zip((k1, k0), labels):
    s = plots.kernel_stats(kernel)
    log(f"{first} kernel {s['shape']} {label}: mean {s['mean']:.4f} std {s['std']:.4f} "
        f"range {s['min']:.3f}..{s['max']:.3f}")
  maps = capture(model, state, x)
  for name in layers:
    dims = "x".join(map(str, maps[name].shape[1:]))
    put(plots.feature_map_grid(maps[name], name, title=f"{name} feature maps ({dims}) of {what}"),
        f"feature_maps_{name}.png")


def _initial_data(config, model, data_dir):
  """The run's training images where its model set weights from them at the start (a
  whitening conv1: its initial kernel is the data's, not a random draw), else None."""
  if not hasattr(model, "init_from_data"):
    return None
  return data.load_train_validation(inputs.with_data_dir(config, data_dir))["train"][0]


def _validation_figures(put, config, state, names, mistakes, data_dir):
  """The confusion matrix and the most confident mistakes on the validation split."""
  vx, vy = inputs.dataset_images(config, "validation", data_dir)
  probs, pred = predict_split(state, vx, config.eval_batch_size)
  put(plots.confusion_figure(plots.confusion_counts(vy, pred, len(names)), names), "confusion.png")
  worst = plots.worst_mistakes(probs, vy, mistakes)
  put(plots.mistakes_grid(vx, probs, vy, names, worst), "mistakes.png")
