"""Augmentation's numbers (cnnlab.augment), beyond the shape checks of test_zoo.py: the exact
batches a fixed rng gives (a resumed run replays them, and the same config and seed must give
bit-identical metrics), how augment() splits its rng and reads its defaults, rectangles of a
known size, and flip test-time augmentation. Tiny arrays, eager: fast.

The pinned values are threefry draws (integer arithmetic, the same on every platform) turned
into pixels by float ops far from rounding ties; they were read off the code at b2ca58a.
"""

import jax
import jax.numpy as jnp
import numpy as np

from cnnlab import augment as aug


def _boxes(images):
  """(row, col, height, width) of each image's zeroed rectangle (None: untouched)."""
  out = []
  for img in np.asarray(images)[..., 0]:
    rows, cols = np.nonzero(img == 0)
    out.append(None if rows.size == 0 else (int(rows.min()), int(cols.min()),
                                            int(np.ptp(rows)) + 1, int(np.ptp(cols)) + 1))
  return out


SMALL = np.arange(1, 55).reshape(6, 3, 3, 1).astype(np.uint8)  # NumPy: no JAX call at import


def test_a_fixed_rng_gives_the_same_crops_flips_and_rectangles_as_ever():
  x = jnp.full((8, 6, 7, 1), 200, jnp.uint8)
  assert _boxes(aug.random_erase(jax.random.key(4), x, 0.75)) == [
      (0, 2, 5, 2), None, None, (1, 3, 5, 2), (2, 0, 2, 2), (0, 4, 5, 2), (2, 2, 3, 1), None]
  padded = np.pad(SMALL, ((0, 0), (1, 1), (1, 1), (0, 0)))
  y = np.asarray(aug.random_crop(jax.random.key(2), jnp.asarray(SMALL), 1))
  offsets = [(2, 2), (2, 0), (1, 1), (2, 2), (2, 1), (1, 1)]
  for i, (dy, dx) in enumerate(offsets):
    np.testing.assert_array_equal(y[i], padded[i, dy:dy + 3, dx:dx + 3])
  y = np.asarray(aug.random_flip(jax.random.key(1), jnp.asarray(SMALL)))
  mirrored = [np.array_equal(y[i], SMALL[i, :, ::-1]) for i in range(6)]
  assert mirrored == [True, False, True, True, False, False]
  all_on = aug.augment(jax.random.key(7), jnp.asarray(SMALL), {"crop_padding": 1, "flip": True,
                                                  "erase_prob": 0.5})
  assert np.asarray(all_on)[..., 0].tolist() == [
      [[0, 4, 5], [0, 7, 8], [0, 0, 0]], [[0, 0, 0], [0, 0, 0], [0, 13, 14]],
      [[21, 20, 19], [24, 0, 22], [27, 26, 25]], [[33, 32, 31], [36, 35, 0], [0, 0, 0]],
      [[39, 38, 37], [42, 0, 40], [45, 44, 43]], [[0, 0, 0], [46, 47, 48], [49, 50, 51]]]


def test_augment_gives_each_step_its_own_part_of_the_rng_and_the_documented_defaults():
  key = jax.random.key(11)
  crop_key, flip_key, erase_key = jax.random.split(key, 3)
  x = jnp.asarray(np.random.default_rng(0).integers(1, 256, (8, 6, 6, 1)).astype(np.uint8))
  same = np.testing.assert_array_equal
  same(aug.augment(key, x, {"crop_padding": 2}), aug.random_crop(crop_key, x, 2))
  same(aug.augment(key, x, {"flip": True}), aug.random_flip(flip_key, x))
  same(aug.augment(key, x, {"erase_prob": 0.5}),
       aug.random_erase(erase_key, x, 0.5, (0.02, 0.4), 0.3))
  assert (aug.DEFAULT_ERASE_AREA, aug.DEFAULT_ERASE_ASPECT) == ((0.02, 0.4), 0.3)
  same(aug.augment(key, x, {"erase_prob": 1.0, "erase_area": (0.25, 0.25), "erase_aspect": 1.0}),
       aug.random_erase(erase_key, x, 1.0, (0.25, 0.25), 1.0))
  # in order: crop, then flip the cropped image, then erase
  steps = aug.random_erase(erase_key, aug.random_flip(flip_key, aug.random_crop(crop_key, x, 1)),
                           0.5, (0.02, 0.4), 0.3)
  same(aug.augment(key, x, {"crop_padding": 1, "flip": True, "erase_prob": 0.5}), steps)


def test_crops_take_every_shift_up_to_the_padding_in_both_axes():
  """Padding 2: offsets 0..4 in each axis, drawn independently (200 images see all 25)."""
  x = np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1).repeat(200, 0)
  y = np.asarray(aug.random_crop(jax.random.key(3), jnp.asarray(x), 2))
  padded = np.pad(x[0, :, :, 0], 2)
  shifts = {next((dy, dx) for dy in range(5) for dx in range(5)
                 if np.array_equal(padded[dy:dy + 3, dx:dx + 3], img[..., 0])) for img in y}
  assert shifts == {(dy, dx) for dy in range(5) for dx in range(5)}


def test_a_rectangle_of_a_quarter_of_the_image_at_aspect_one_is_4x4_anywhere_it_fits():
  """16 of 64 pixels at ratio 1: 4x4; on 4x16 images it fills the rows and starts at 0..12,
  each start as likely (64 images see every one of the 13)."""
  x = jnp.ones((64, 4, 16, 1), jnp.float32)
  boxes = _boxes(aug.random_erase(jax.random.key(5), x, 1.0, (0.25, 0.25), 1.0))
  assert {(row, h, w) for row, _, h, w in boxes} == {(0, 4, 4)}
  assert sorted({col for _, col, _, _ in boxes}) == list(range(13))


def test_default_rectangles_span_the_documented_area_and_aspect():
  """erase_area (0.02, 0.4) of the image, aspect 0.3..1/0.3; sides are rounded to pixels."""
  x = jnp.ones((64, 28, 28, 1), jnp.float32)
  boxes = _boxes(aug.random_erase(jax.random.key(6), x, 1.0))
  area = np.array([h * w for _, _, h, w in boxes]) / (28 * 28)
  aspect = np.array([h / w for _, _, h, w in boxes])
  assert 0.02 <= area.min() < 0.05 and 0.3 < area.max() <= 0.42
  assert 0.25 < aspect.min() < 0.4 and 2.5 < aspect.max() < 3.4 and (aspect < 1).any()


def test_erasing_keeps_the_dtype_and_writes_zero():
  for dtype in (jnp.uint8, jnp.float32):
    y = aug.random_erase(jax.random.key(0), jnp.full((4, 8, 8, 1), 7, dtype), 1.0)
    assert y.dtype == dtype and set(np.unique(np.asarray(y)).tolist()) == {0, 7}


def test_flip_test_time_augmentation_averages_the_logits_of_image_and_mirror():
  weights = jnp.arange(1.0, 4.0)  # column weights: the mirror image scores differently
  logits_fn = lambda images: jnp.stack([(images[..., 0] * weights).sum((1, 2)),
                                        images[..., 0].sum((1, 2))], -1)
  x = jnp.asarray([[[1.0], [0.0], [0.0]]])[None]  # one 1x3 image: a bright left pixel
  np.testing.assert_array_equal(logits_fn(x), [[1.0, 1.0]])
  np.testing.assert_array_equal(aug.flip_tta_logits(logits_fn, x), [[2.0, 1.0]])  # (1 + 3) / 2


def test_all_off_returns_the_very_same_array():
  """Documented: with every step off the batch is untouched (no crop by 0, no erase with p 0)."""
  x = jnp.ones((2, 4, 4, 1))
  assert aug.augment(jax.random.key(0), x, {"crop_padding": 0, "flip": False,
                                            "erase_prob": 0.0}) is x
