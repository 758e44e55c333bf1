"""Patch whitening: a first conv whose filters are computed from the training images, not learned.

airbench's first lever (CIFAR-10 epochs to 94%: 35 -> 21): the 3x3 patches of the training
images have a covariance whose eigenvectors, scaled by 1/sqrt(eigenvalue + eps), map a patch
to decorrelated unit-variance components. As a conv layer, each eigenvector is one filter; with
its negative beside it (+-pairs), the ReLU that follows keeps both signs. The filters stay
frozen (the model stops their gradient) and the bias, started at minus the mean patch's
response, trains. On Fashion-MNIST (grey, 3x3: 9 components, 18 filters) it bought the 0.93
speedrun: test after 4 epochs 0.9212-0.9223 -> 0.9282-0.9320 (experiments/speedrun_93.py,
docs/performance.md).

`whitening_filters` is plain NumPy in float64 on the host, run once when a run's parameters are
initialised (train.state.build); it reads the first `max_images` training images, so the same
split gives the same filters.
"""

import numpy as np


MAX_IMAGES = 5000  # the training images whose patches set the filters (the first ones)


def patch_covariance(images, size=3, max_images=MAX_IMAGES, chunk=500):
  """(mean (P,), covariance (P, P)) of the size x size patches of NHWC images scaled to [0, 1],
  zero-padded like a SAME conv; P = size * size * channels. Chunked: never all patches at once."""
  images = np.asarray(images[:max_images])
  pad = (size - 1) // 2, size // 2
  total, outer, count = 0.0, 0.0, 0
  for i in range(0, len(images), chunk):
    x = images[i:i + chunk].astype(np.float64) / (255.0 if images.dtype == np.uint8 else 1.0)
    x = np.pad(x, ((0, 0), pad, pad, (0, 0)))
    patches = np.lib.stride_tricks.sliding_window_view(x, (size, size), axis=(1, 2))
    patches = patches.transpose(0, 1, 2, 4, 5, 3).reshape(-1, size * size * x.shape[-1])
    total, outer, count = total + patches.sum(0), outer + patches.T @ patches, count + len(patches)
  mean = total / count
  return mean, (outer - count * np.outer(mean, mean)) / (count - 1)


def max_filters(channels, size=3):
  """The most whitening filters a size x size conv on `channels` can hold: +- each component."""
  return 2 * size * size * channels


def whitening_filters(images, features, size=3, eps=1e-2, max_images=5000):
  """(kernel (size, size, C, features), bias (features,)) float32: +-pairs of the features // 2
  largest principal components of the patches, each scaled by 1 / sqrt(eigenvalue + eps).
  `features` must be even and at most max_filters(C, size)."""
  channels = np.shape(images)[-1]
  if features % 2 or features > max_filters(channels, size):
    raise ValueError(f"whitening needs an even number of filters <= "
                     f"{max_filters(channels, size)}, got {features}")
  mean, cov = patch_covariance(images, size, max_images)
  eigenvalues, eigenvectors = np.linalg.eigh(cov)  # ascending
  top = np.argsort(eigenvalues)[::-1][:features // 2]
  half = eigenvectors[:, top] / np.sqrt(eigenvalues[top] + eps)
  w = np.concatenate([half, -half], axis=1)
  kernel = w.reshape(size, size, channels, features)
  return kernel.astype(np.float32), (-(mean @ w)).astype(np.float32)
