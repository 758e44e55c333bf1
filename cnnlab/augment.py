"""On-device data augmentation: pure, jittable, vectorised over the batch, keyed by an rng.

Usage (inside the jitted train step, before the forward pass):

    images = augment(jax.random.fold_in(aug_rng, step), batch["image"], config.augment)

`config.augment` (a ConfigDict or dict, checked by cnnlab.config; read at trace time, so it
must hold Python values):
  crop_padding  P >= 0: zero-pad P pixels on every side, then crop a random HxW window per
                image (a random shift by -P..P pixels in each axis; 0 = off).
  flip          True: mirror each image left-right with probability 1/2. Fine for clothes
                (Fashion-MNIST), wrong for digits and text.
  erase_prob    probability per image of random erasing (Zhong et al. 2017): one rectangle
                of area erase_area (fraction, default (0.02, 0.4)) and aspect ratio in
                [erase_aspect, 1/erase_aspect] (default 0.3) is set to 0 (background).
With all three off the images come back unchanged (the same array), so the course recipe is
untouched. Images may be uint8 or float, NHWC; dtype and shape are kept. Every random number
derives from `rng`: the same rng gives the same batch, and a resumed run replays exactly.

For evaluation, `flip_tta_logits(logits_fn, images)` averages the logits of each image and of
its mirror image (test-time augmentation; only sensible where training used `flip`).
"""

import jax
import jax.numpy as jnp


DEFAULT_ERASE_AREA = (0.02, 0.4)
DEFAULT_ERASE_ASPECT = 0.3


def augment(rng, images, config_aug):
  """Randomly crop (pad-and-crop), flip and erase each image of an NHWC batch."""
  if not config_aug:
    return images
  padding = int(config_aug.get("crop_padding", 0))
  flip = bool(config_aug.get("flip", False))
  erase_prob = float(config_aug.get("erase_prob", 0.0))
  crop_rng, flip_rng, erase_rng = jax.random.split(rng, 3)
  if padding > 0:
    images = random_crop(crop_rng, images, padding)
  if flip:
    images = random_flip(flip_rng, images)
  if erase_prob > 0.0:
    area = tuple(config_aug.get("erase_area", DEFAULT_ERASE_AREA))
    aspect = float(config_aug.get("erase_aspect", DEFAULT_ERASE_ASPECT))
    images = random_erase(erase_rng, images, erase_prob, area, aspect)
  return images


def random_crop(rng, images, padding):
  """Zero-pad by `padding` and cut a random window of the original size from each image."""
  n, h, w, c = images.shape
  padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  offsets = jax.random.randint(rng, (n, 2), 0, 2 * padding + 1)
  crop = lambda img, off: jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, c))
  return jax.vmap(crop)(padded, offsets)


def random_flip(rng, images):
  """Mirror each image left-right (width axis) with probability 1/2."""
  mirror = jax.random.bernoulli(rng, 0.5, (images.shape[0], 1, 1, 1))
  return jnp.where(mirror, images[:, :, ::-1, :], images)


def random_erase(rng, images, prob, area=DEFAULT_ERASE_AREA, aspect=DEFAULT_ERASE_ASPECT):
  """With probability `prob` per image, zero one random rectangle (a mask, no loop)."""
  n, h, w, _ = images.shape
  k_apply, k_area, k_ratio, k_y, k_x = jax.random.split(rng, 5)
  apply = jax.random.bernoulli(k_apply, prob, (n,))
  frac = jax.random.uniform(k_area, (n,), minval=area[0], maxval=area[1])
  log_r = jax.random.uniform(k_ratio, (n,), minval=jnp.log(aspect), maxval=-jnp.log(aspect))
  ratio = jnp.exp(log_r)
  eh = jnp.clip(jnp.round(jnp.sqrt(frac * h * w * ratio)), 1, h).astype(jnp.int32)
  ew = jnp.clip(jnp.round(jnp.sqrt(frac * h * w / ratio)), 1, w).astype(jnp.int32)
  y0 = jnp.floor(jax.random.uniform(k_y, (n,)) * (h - eh + 1)).astype(jnp.int32)
  x0 = jnp.floor(jax.random.uniform(k_x, (n,)) * (w - ew + 1)).astype(jnp.int32)
  rows, cols = jnp.arange(h)[None, :], jnp.arange(w)[None, :]
  in_rows = (rows >= y0[:, None]) & (rows < (y0 + eh)[:, None])  # (n, h)
  in_cols = (cols >= x0[:, None]) & (cols < (x0 + ew)[:, None])  # (n, w)
  erase = apply[:, None, None] & in_rows[:, :, None] & in_cols[:, None, :]
  return jnp.where(erase[..., None], jnp.zeros((), images.dtype), images)


def flip_tta_logits(logits_fn, images):
  """Mean of logits_fn(images) and logits_fn(mirrored images): flip test-time augmentation.

  Averages logits (not probabilities), so argmax and loss stay those of one model's output.
  """
  return 0.5 * (logits_fn(images) + logits_fn(images[:, :, ::-1, :]))
