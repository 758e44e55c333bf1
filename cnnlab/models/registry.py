"""Model names -> Flax modules, so a config names its model by string."""

import dataclasses

import jax.numpy as jnp

from cnnlab.errors import UserError, closest
from cnnlab.models.fashion_cnn_bn import FashionCNNBN
from cnnlab.models.fashion_dnn import FashionDNN
from cnnlab.models.inception_mini import InceptionMini
from cnnlab.models.lenet5 import LeNet5, LeNet5ReLU
from cnnlab.models.resnet_small import ResNetSmall
from cnnlab.models.speedrun_cnn import SpeedrunCNN
from cnnlab.models.textbook_cnn import TextbookCNN
from cnnlab.models.vgg_small import VGGSmall
from cnnlab.models.whitening import MAX_IMAGES

MODELS = {
    "textbook_cnn": TextbookCNN,
    "fashion_dnn": FashionDNN,
    "fashion_cnn_bn": FashionCNNBN,
    "lenet5": LeNet5,
    "lenet5_relu": LeNet5ReLU,
    "vgg_small": VGGSmall,
    "resnet_small": ResNetSmall,
    "inception_mini": InceptionMini,
    "speedrun_cnn": SpeedrunCNN,
}
# The models whose first weights are computed from the training data when a run starts
# (`model.init_from_data`): how many of the first training images each reads, by its fields.
# The rest start from random weights, and a run decodes no image for them before training.
INIT_IMAGES = {SpeedrunCNN: lambda m: MAX_IMAGES if m.whiten_eps > 0 else 0}


def model_fields(name):
  """The hyperparameters a model accepts (its dataclass fields), e.g. {'dropout': 0.4}."""
  cls = _model_class(name)
  return {f.name: f.default for f in dataclasses.fields(cls)
          if f.name not in ("parent", "name", "dtype") and f.default is not dataclasses.MISSING}


def create_model(name, dtype="float32", **hparams):
  """Build the registered model `name`; unknown names or hyperparameters are UserErrors.

  `dtype` is the computation dtype ("float32" or "bfloat16": config.dtype), not a
  hyperparameter: parameters are float32 either way (mixed precision).
  """
  cls = _model_class(name)
  valid = model_fields(name)
  for key in hparams:
    if key not in valid:
      raise UserError(f"model {name!r} has no hyperparameter {key!r}{closest(key, valid)}; "
                      f"it takes: {', '.join(sorted(valid))}")
  return cls(dtype=jnp.dtype(dtype), **hparams)


def create_model_from_config(model_config, num_classes, dtype="float32"):
  """Build a model from a config's `model` block: `name` plus its hyperparameters."""
  hparams = {k: v for k, v in model_config.items() if k != "name"}
  return create_model(model_config.name, dtype, num_classes=num_classes, **hparams)


def init_images(model):
  """How many of the first training images `model` reads when a run starts (0: none)."""
  rule = INIT_IMAGES.get(type(model))
  return rule(model) if rule else 0


def _model_class(name):
  if name not in MODELS:
    raise UserError(f"unknown model {name!r}{closest(name, MODELS)}; "
                    f"choose one of: {', '.join(sorted(MODELS))}")
  return MODELS[name]
