"""Reading a trained run for inspection: checked restore, input images, probabilities, taps.

Everything here reads checkpoints and data only; nothing trains. Layer names come from the
model's own taps (models/layers.Taps), so the same code serves every model of the registry.
"""

import functools
import math
import os

import flax.linen as nn
import jax
import numpy as np

from cnnlab import checkpoint, data, runs, steps
from cnnlab.errors import UserError, closest
from cnnlab.models import create_model_from_config, layer_outputs

SPLITS = ("train", "validation")


def load_run(workdir, which="best"):
  """(config, model, state, meta) of a run, after checking its checkpoint fits its config.

  runs.restore alone reports a checkpoint of another model as a series of per-step warnings
  ending in "retrain it"; checking the saved parameter shapes first gives one clear line.
  """
  if which not in ("best", "latest"):
    raise UserError(f"unknown checkpoint choice {which!r}; choose 'best' or 'latest'")
  config = runs.load_config(workdir)
  _, variables = abstract_model(config, workdir)
  _check_saved_params(workdir, config, variables["params"])
  return runs.restore(workdir, which)


def abstract_model(config, workdir="the run"):
  """(model, variables as ShapeDtypeStructs) of a config: shapes in milliseconds, no init.

  Enough to list layers and check inputs before the (seconds-long) build and restore.
  """
  try:
    model = create_model_from_config(config.model, len(data.class_names(config.dataset)))
  except UserError as err:
    raise UserError(f"the config.json of {workdir} cannot be built ({err})") from None
  x = jax.ShapeDtypeStruct((1, *data.image_shape(config.dataset)), np.float32)
  init = functools.partial(model.init, train=False)
  return model, jax.eval_shape(init, jax.ShapeDtypeStruct((2,), np.uint32), x)


def _check_saved_params(workdir, config, params):
  import orbax.checkpoint as ocp
  from etils import epath
  mngr = checkpoint.manager(workdir, read_only=True)
  try:
    all_steps = mngr.all_steps()
    if not all_steps:
      return  # runs.restore says how to get a checkpoint
    path = epath.Path(mngr.directory) / str(max(all_steps)) / "state"
    try:
      saved = ocp.StandardCheckpointHandler().metadata(path).tree["state"]["params"]
      got = jax.tree.map(lambda m: tuple(m.shape), saved)
    except Exception:  # unreadable metadata: restore's own integrity checks will speak
      return
  finally:
    mngr.close()
  want = jax.tree.map(lambda a: tuple(a.shape), params)
  if got != want:
    describe = lambda tree: ", ".join(f"{k} {tuple(v['kernel'])}" if "kernel" in v else k
                                      for k, v in tree.items())
    raise UserError(
        f"the checkpoints in {workdir} hold another model than its config.json describes "
        f"(model {config.model.name!r}: {describe(want)}; checkpoint: {describe(got)}); "
        "pass the workdir the checkpoint was trained in, or restore its config.json")


def dataset_images(config, split, data_dir=None):
  """(uint8 images, labels) of `split`: "train" is the training file in its own order
  (image 0 is the course's ankle boot), "validation" the held-out part training used."""
  if split not in SPLITS:
    raise UserError(f"unknown split {split!r}{closest(split, SPLITS)}; choose one of: "
                    f"{', '.join(SPLITS)}")
  if data_dir:
    config = config.copy_and_resolve_references()
    config.data_dir = data_dir
  if split == "train":
    return data.load_split(config.dataset, "train", config.data_dir or None)
  return data.load_train_validation(config)["validation"]


def pick(images, labels, index, split):
  """Image `index` of a split as a batch of one (1, H, W, C), and its label."""
  if not 0 <= index < len(images):
    raise UserError(f"--index={index} is out of range: the {split} split has {len(images):,} "
                    f"images (0..{len(images) - 1})")
  return images[index:index + 1], int(labels[index])


def load_image(path, shape=(28, 28, 1), invert="auto"):
  """Any picture file -> (uint8 (1, H, W, 1) like the training data, inverted?).

  Fashion-MNIST shows a light object on a black background. With invert="auto" the median of
  the outer 2-pixel ring decides: a light ring (> 127) means a light background, so the
  picture is inverted. Pictures of another size are then cropped to the object, padded to a
  square, resized (longest side = 28, as the dataset was made) and contrast-stretched; a
  picture already of the right size is used as it is, so a saved dataset image round-trips.
  """
  from PIL import Image, ImageOps, UnidentifiedImageError
  if invert not in ("auto", "yes", "no"):
    raise UserError(f"unknown --invert={invert!r}; choose auto, yes or no")
  try:
    with Image.open(path) as im:
      im = ImageOps.exif_transpose(im)
      if im.mode in ("RGBA", "LA", "P"):
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im)  # transparent = light background
      grey = np.asarray(im.convert("L"), np.float32)
  except FileNotFoundError:
    raise UserError(f"image file {path!r} does not exist") from None
  except IsADirectoryError:
    raise UserError(f"{path!r} is a directory; pass an image file (PNG, JPEG, ...)") from None
  except (UnidentifiedImageError, OSError, ValueError) as err:
    raise UserError(f"{path!r} is not an image this tool can read ({type(err).__name__}); "
                    "pass a PNG or JPEG file") from None
  ring = np.concatenate([grey[:2].ravel(), grey[-2:].ravel(), grey[:, :2].ravel(),
                         grey[:, -2:].ravel()])
  inverted = invert == "yes" or (invert == "auto" and np.median(ring) > 127)
  if inverted:
    grey, ring = 255.0 - grey, 255.0 - ring
  if grey.shape != tuple(shape[:2]):
    grey = _fit(grey, float(np.median(ring)), shape[:2])
  return np.clip(np.round(grey), 0, 255).astype(np.uint8).reshape(1, *shape), bool(inverted)


def _fit(grey, background, size):
  """Crop to the object, pad to a square, resize, and stretch background..max to 0..255."""
  from PIL import Image
  grey = np.clip((grey - background) / max(grey.max() - background, 1.0), 0, 1) * 255
  ys, xs = np.nonzero(grey > 0.2 * 255)
  if len(ys):
    grey = grey[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
  h, w = grey.shape
  side = max(h, w)
  square = np.zeros((side, side), np.float32)
  square[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = grey
  out = Image.fromarray(square).resize(size[::-1], Image.LANCZOS)
  return np.asarray(out, np.float32)


_logits = jax.jit(steps.logits_fn)


def probabilities(state, images, batch_size=1000):
  """Softmax of the eval-mode logits (dropout off) of uint8 or float images, as numpy."""
  out = [np.asarray(jax.nn.softmax(_logits(state, images[i:i + batch_size]), axis=-1))
         for i in range(0, len(images), batch_size)]
  return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def top_k(probs, names, k=3):
  """[(name, probability), ...] of the k most probable classes of one image, best first."""
  probs = np.asarray(probs).reshape(-1)
  return [(names[i], float(probs[i])) for i in np.argsort(-probs)[:k]]


def capture(model, state, images):
  """Every tapped layer output of one forward pass (eval mode): {name: array}, forward order."""
  _, outputs = layer_outputs(model, steps.variables(state), steps.to_float(images))
  return {name: np.asarray(v) for name, v in outputs.items()}


def layer_table(model, state, input_shape):
  """[{name, kind, shape, params}] in forward order, from the taps (shapes only, no compute).

  `state` is a TrainState or a variables dict, concrete or abstract (abstract_model).
  A parameter group counts toward the first output tapped after it runs, so a BatchNorm
  without a tap of its own (FashionCNN-BN's bn1) is listed inside "conv1". The call order
  is read with nn.intercept_methods, since pytrees sort dict keys.
  """
  events = []

  def record(next_fun, args, kwargs, context):
    module = context.module
    if context.method_name == "__call__" and module.parent is not None:
      top = module.scope.path[0] if module.scope.path else None
      if module.name == "taps" and args:
        events.append(("tap", args[0]))
      elif top is not None and (not events or events[-1] != ("params", top)):
        events.append(("params", top))
    return next_fun(*args, **kwargs)

  x = jax.ShapeDtypeStruct((1, *input_shape), np.float32)
  variables = steps.variables(state) if hasattr(state, "params") else state
  params = variables["params"]
  abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), variables)
  with nn.intercept_methods(record):
    _, shapes = layer_outputs(model, abstract, x)
  rows = {name: {"name": name, "kind": "", "shape": tuple(s.shape[1:]), "params": 0}
          for name, s in shapes.items()}
  pending = []
  for kind, name in events:
    if kind == "params" and name in params and name not in pending:
      pending.append(name)
    elif kind == "tap" and name in rows:
      for group in pending:
        _add_params(rows[name], group, params[group])
      pending = []
  return list(rows.values())


def _add_params(row, name, group):
  row["params"] += sum(math.prod(a.shape) for a in jax.tree.leaves(group))
  shape = _kernel_shape({name: group}, name)
  if len(shape) == 4:
    kind = f"Conv {shape[0]}x{shape[1]}, {shape[3]} filters"
  elif len(shape) == 2:
    kind = f"Dense {shape[1]}"
  else:
    kind = name
  row["kind"] = f"{row['kind']} + {kind}" if row["kind"] else kind


def conv_layers(table, params):
  """Names of the tapped layers with a 4-D (HWIO) kernel, in forward order."""
  return [r["name"] for r in table if len(_kernel_shape(params, r["name"])) == 4]


def _kernel_shape(params, name):
  group = params.get(name)
  kernel = group.get("kernel") if hasattr(group, "get") else None
  return () if kernel is None else tuple(kernel.shape)


def kernel_of(params, name):
  """params[name]["kernel"] as numpy, or None for layers without one."""
  group = params.get(name)
  kernel = group.get("kernel") if hasattr(group, "get") else None
  return None if kernel is None else np.asarray(kernel)


def select_layers(table, params, requested=(), model_name="the model"):
  """The conv layers to draw: `requested`, checked, or by default the first two."""
  valid = conv_layers(table, params)
  for name in requested:
    if name not in valid:
      choices = ", ".join(valid) if valid else "none (it has no conv layer)"
      raise UserError(f"--layer={name}: model {model_name!r} has no conv layer {name!r}"
                      f"{closest(name, valid)}; its conv layers: {choices}")
  return list(requested) if requested else valid[:2]


def predict_split(state, images, batch_size=1000):
  """(probabilities (N, classes), predicted class (N,)) of a whole split."""
  probs = probabilities(state, images, batch_size)
  return probs, probs.argmax(-1)


def class_names(config, lang="en"):
  if lang not in ("en", "ko"):
    raise UserError(f"unknown --lang={lang!r}; choose en or ko")
  return data.class_names(config.dataset, lang)


def figures_dir(workdir, out=None):
  path = out or os.path.join(workdir, "figures")
  from cnnlab import cli
  return cli.writable_dir(path, "out")


def classify(workdir, image=None, index=None, split="validation", which="best", invert="auto",
             lang="en", data_dir=None):
  """(probabilities (classes,), class names, input (1,H,W,C) uint8, description, label)."""
  if (image is None) == (index is None):
    raise UserError("pass --image=FILE (a picture) or --index=N (a dataset image), one of them")
  saved = runs.load_config(workdir)
  names, shape = class_names(saved, lang), data.image_shape(saved.dataset)
  if image is not None:  # check the picture before the (seconds-long) restore
    x, inverted = load_image(image, shape, invert)
    what, label = image + (" (light background: inverted)" if inverted else ""), None
  else:  # likewise the index
    x, label = pick(*dataset_images(saved, split, data_dir), index, split)
    what = f"{split} image {index} (label: {names[label]})"
  _, _, state, _ = load_run(workdir, which)
  probs = probabilities(state, x)[0]
  return probs, names, x, what, label
