"""The course CNN as the course writes it in Keras 3 and in PyTorch: what `export` writes for.

Both take images scaled as cnnlab's training step scales them (pixels / 255): Keras NHWC
(N, 28, 28, 1), PyTorch NCHW (N, 1, 28, 28). The Keras model ends in a softmax as the
course's does (probabilities); the PyTorch one returns logits, as the course's does (its loss
is CrossEntropyLoss). Keras and torch are imported only when asked for.
"""

import os

INPUT_SHAPE = (28, 28, 1)  # NHWC, the course's Fashion-MNIST (and MNIST) images
WIDTHS, HIDDEN = (32, 64), 100  # conv1/conv2 filters and dense1 units of the course CNN


def keras_textbook_cnn(num_classes=10, dropout=0.4):
  """The course's Keras Sequential model, layers named as cnnlab's (conv1 ... output)."""
  os.environ.setdefault("KERAS_BACKEND", "jax")  # Keras 3 defaults to TensorFlow
  import keras
  from keras import layers
  return keras.Sequential([
      keras.Input(INPUT_SHAPE),
      layers.Conv2D(WIDTHS[0], 3, padding="same", activation="relu", name="conv1"),
      layers.MaxPooling2D(2, name="pool1"),
      layers.Conv2D(WIDTHS[1], 3, padding="same", activation="relu", name="conv2"),
      layers.MaxPooling2D(2, name="pool2"),
      layers.Flatten(name="flatten"),
      layers.Dense(HIDDEN, activation="relu", name="dense1"),
      layers.Dropout(dropout, name="dropout"),
      layers.Dense(num_classes, activation="softmax", name="output"),
  ], name="textbook_cnn")


def torch_textbook_cnn(num_classes=10, dropout=0.3):
  """The course's PyTorch model, nn.Sequential as its notebook writes it (state_dict keys 0., 3.,
  7., 10.); also bench's yardstick (bench/torch_baseline.py)."""
  try:
    import torch
  except ImportError as err:  # pragma: no cover - depends on the machine
    raise ImportError("the course's PyTorch model needs torch: pip install torch (CPU build)") from err
  nn = torch.nn
  return nn.Sequential(
      nn.Conv2d(1, WIDTHS[0], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
      nn.Conv2d(WIDTHS[0], WIDTHS[1], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
      nn.Flatten(), nn.Linear(WIDTHS[1] * 7 * 7, HIDDEN), nn.ReLU(), nn.Dropout(dropout),
      nn.Linear(HIDDEN, num_classes))
