"""Inputs to inspect a run with: dataset images by split and index, or any picture file.

Pictures are made to look like the training data: for a folder or TFDS dataset through the
one transform the training images took (cnnlab.input.transform); for the course's datasets
(grey, light object on black, 28x28) a phone photo of a shoe is made to look like a test image.
"""

import numpy as np

from cnnlab import data
from cnnlab.errors import UserError, closest
from cnnlab.input import sources, transform

SPLITS = ("train", "validation")


def dataset_images(config, split, data_dir=None):
  """(uint8 images, labels) of `split`: "train" is the training file in its own order
  (image 0 is the course's ankle boot), "validation" the held-out part training used."""
  if split not in SPLITS:
    raise UserError(f"unknown split {split!r}{closest(split, SPLITS)}; choose one of: "
                    f"{', '.join(SPLITS)}")
  config = with_data_dir(config, data_dir)
  if split == "train":
    return data.load_split(config, "train")
  return data.load_train_validation(config)["validation"]


def with_data_dir(config, data_dir=None):
  """`config` reading its data from `data_dir` (a copy), or `config` itself when none given."""
  if not data_dir:
    return config
  config = config.copy_and_resolve_references()
  config.data_dir = data_dir
  return config


def pick(images, labels, index, split):
  """Image `index` of a split as a batch of one (1, H, W, C), and its label."""
  if not 0 <= index < len(images):
    raise UserError(f"--index={index} is out of range: the {split} split has {len(images):,} "
                    f"images (0..{len(images) - 1})")
  return images[index:index + 1], int(labels[index])


def load_image(path, config, invert="auto"):
  """Any picture file -> (uint8 (1, H, W, C) like the run's training data, inverted?).

  A folder or TFDS dataset's picture (or any with config.image_size set) passes through the
  transform its training images took, inverted only with invert="yes"; the course's
  datasets' pictures are made to look like them (`_like_course_data`).
  """
  if invert not in ("auto", "yes", "no"):
    raise UserError(f"unknown --invert={invert!r}; choose auto, yes or no")
  shape = data.image_shape(config)
  if data.is_registered(config) and not sources.settings(config).image_size:
    return _like_course_data(path, shape, invert)
  x = transform.read(path, shape)
  return (255 - x if invert == "yes" else x)[None], invert == "yes"


def _like_course_data(path, shape, invert):
  """Fashion-MNIST shows a light object on a black background. With invert="auto" the median
  of the outer 2-pixel ring decides: a light ring (> 127) means a light background, so the
  picture is inverted. Pictures of another size are then cropped to the object, padded to a
  square, resized (longest side = the dataset's, as Fashion-MNIST was made) and
  contrast-stretched; a picture already of the right size is used as it is, so a saved
  dataset image round-trips.
  """
  from PIL import Image, ImageOps, UnidentifiedImageError
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
