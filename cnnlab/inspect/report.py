"""Every figure of a run, written to disk: what `./launch.sh viz` does, callable in-process.

Reads the run's checkpoints and data only (viz never trains); all inputs are checked before
anything is drawn, so a mistake costs seconds, not a half-written figures directory.
An unfinished (interrupted) run is drawn from the step restored (its best epoch, or its latest
good step when no epoch has finished), labelled as such, with a line saying how to resume it;
without a finished epoch there are no training curves to draw.
"""

import dataclasses
import os
import sys
from typing import Any, Optional

from cnnlab import data, rundir
from cnnlab.errors import UserError
from cnnlab.inspect import inputs, plots
from cnnlab.inspect.layers import capture, kernel_of, layer_table, select_layers
from cnnlab.inspect.predict import predict_split
from cnnlab.inspect.restore import abstract_model, load_run
from cnnlab.models import registry
from cnnlab.train import state as state_lib


@dataclasses.dataclass(frozen=True)
class Figures:
  """What `viz` draws (its flags): the checkpoint (best or latest), the conv layers (default:
  the first two), the image of the feature maps (`image`, a file, else `index` in `split`), the
  number of worst validation mistakes, the kernels' colour range (course or max) and the IDX
  directory (default: the run's config.data_dir)."""
  which: str = "best"
  layers: tuple = ()
  split: str = "train"
  index: int = 0
  image: Optional[str] = None
  invert: str = "auto"
  mistakes: int = 16
  kernel_range: str = "course"
  data_dir: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class _Restored:
  """The run as restored for drawing."""
  config: Any
  model: Any
  state: Any
  history: list
  step: Optional[int]


def write_figures(workdir, out=None, figures=Figures(), log=None):
  """Write every figure of a run; returns their paths. Checks all inputs before drawing."""
  log = log or (lambda msg: print(msg, file=sys.stderr))
  run = rundir.Run(workdir)
  config = run.read_config()
  model, abstract = abstract_model(config, workdir)
  shape = data.image_shape(config)
  table = layer_table(model, abstract, shape)
  layers = select_layers(table, abstract["params"], figures.layers, config.model.name)
  names = data.class_names(config)
  if figures.mistakes < 0:
    raise UserError(f"--mistakes={figures.mistakes} must be >= 0")
  picture = _picture(config, figures, shape, names)
  out = run.figures_dir(out, create=False)  # checked now, created once there is something
  _, model, state, meta = load_run(workdir, figures.which)  # the slow part: build + restore
  out = run.figures_dir(out)
  restored = _Restored(config, model, state, run.history(), meta.get("step"))
  if not run.finished:
    log(f"{workdir} is an unfinished run ({len(restored.history)} of {config.num_epochs} "
        f"epochs finished; drawing its step {restored.step}); resume it with: ./launch.sh "
        f"train --workdir={workdir}")
  paths = []
  put = lambda fig, name: paths.append(plots.save(fig, os.path.join(out, name)))
  if layers:
    _layer_figures(put, restored, figures, layers, picture, log)
  else:
    log(f"model {config.model.name!r} has no conv layer: no kernel or feature-map figures")
  if restored.history:
    put(plots.training_curves(restored.history), "curves.png")
  else:
    log("no epoch has finished yet, so there are no training curves (curves.png)")
  _validation_figures(put, restored, figures, names)
  put(plots.model_diagram(table, shape, config.model.name), "model.png")
  return paths


def _picture(config, figures, shape, names):
  """(the image of the feature maps as the model takes it, a phrase saying which it is)."""
  if figures.image:
    x, inverted = inputs.load_image(figures.image, config, figures.invert)
    return x, f"{os.path.basename(figures.image)}{' (inverted)' if inverted else ''}"
  images = inputs.dataset_images(config, figures.split, figures.data_dir)
  x, label = inputs.pick(*images, figures.index, figures.split)
  return x, f"{figures.split} image {figures.index} ({names[label]})"


def _trained_label(which, history, step):
  """"trained (best, epoch 3)", or for a step that ends no epoch (an interrupted run's
  latest good step) "trained (latest good step 113, in epoch 2)"."""
  epoch = {r["step"]: r["epoch"] for r in history}.get(step)
  if epoch:
    return f"trained ({which}, epoch {epoch})"
  within = step // history[0]["step"] + 1 if history else 1  # epoch 1 ends at history[0]
  return f"trained (latest good step {step}, in epoch {within})"


def _layer_figures(put, restored, figures, layers, picture, log):
  """Kernels and weight histograms of the first conv layer, feature maps of each."""
  config, first = restored.config, layers[0]
  labels = (_trained_label(figures.which, restored.history, restored.step),
            f"untrained (seed {config.seed})")
  initial = _initial_data(config, restored.model, figures.data_dir)
  _, init = state_lib.build(config, train_images=initial)
  k1, k0 = kernel_of(restored.state.params, first), kernel_of(init.params, first)
  put(plots.kernel_grid(k1, k0, first, labels=labels, scale=figures.kernel_range),
      f"{first}_kernels.png")
  put(plots.weight_histograms(k1, k0, first, labels=labels), f"{first}_hist.png")
  for kernel, label in zip((k1, k0), labels):
    s = plots.kernel_stats(kernel)
    log(f"{first} kernel {s['shape']} {label}: mean {s['mean']:.4f} std {s['std']:.4f} "
        f"range {s['min']:.3f}..{s['max']:.3f}")
  x, what = picture
  maps = capture(restored.model, restored.state, x)
  for name in layers:
    dims = "x".join(map(str, maps[name].shape[1:]))
    put(plots.feature_map_grid(maps[name], name, title=f"{name} feature maps ({dims}) of {what}"),
        f"feature_maps_{name}.png")


def _initial_data(config, model, data_dir):
  """The run's training images where its model set weights from them at the start (a
  whitening conv1: its initial kernel is the data's, not a random draw), else None."""
  if not registry.init_images(model):
    return None
  return data.load_train_validation(inputs.with_data_dir(config, data_dir))["train"][0]


def _validation_figures(put, restored, figures, names):
  """The confusion matrix and the most confident mistakes on the validation split."""
  vx, vy = inputs.dataset_images(restored.config, "validation", figures.data_dir)
  probs, pred = predict_split(restored.state, vx, restored.config.eval_batch_size)
  counts = plots.confusion_counts(vy, pred, len(names))
  put(plots.confusion_figure(counts, names), "confusion.png")
  worst = plots.worst_mistakes(probs, vy, figures.mistakes)
  put(plots.mistakes_grid(vx, probs, vy, names, worst), "mistakes.png")
