"""The one image transform: any picture -> uint8 (H, W, C) of the run's shape.

Training data, evaluation, `predict --image` and `viz` all pass through `fit` (files through
`read`), so a picture is seen exactly as the training images were. The rule, as torchvision's
Resize(S) + CenterCrop(S): scale so the picture covers H x W, keep the centre (one bilinear,
antialiased resample of the centre box). A picture already of the shape is not touched.
Transparent pixels become white; EXIF orientation is ignored (as Keras and ImageFolder do).
"""

import numpy as np

from cnnlab.errors import UserError

# The largest image side accepted (config.image_size, or a dataset's own size): 512 is above
# what image classifiers train at (224-480 px); a larger side is nearly always a mistake, and
# the course models' dense layer grows with its square (a 512x512 textbook_cnn: ~2 GB of weights).
MAX_IMAGE_SIZE = 512
_GREY = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def is_grey(im):
  """True for a single-channel picture (a palette counts when all its colours are grey)."""
  if im.mode == "P":
    palette = np.asarray(im.getpalette() or [], np.int32).reshape(-1, 3)
    return bool(len(palette)) and bool(np.all(palette == palette[:, :1]))
  return im.mode in _GREY


def fit(im, shape):
  """A PIL image -> uint8 array of `shape` (H, W, C), C = 1 (grey) or 3 (RGB)."""
  from PIL import Image
  h, w, c = shape
  if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
    im = im.convert("RGBA")
    im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im)
  if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit/float grey: scale to 0..255
    a = np.asarray(im, np.float64)
    im = Image.fromarray(np.uint8(np.clip(a * 255.0 / max(a.max(), 1.0), 0, 255)))
  im = im.convert("L" if c == 1 else "RGB")
  if im.size != (w, h):
    width, height = im.size
    # Cover the target, then keep the centre: the tighter side is taken whole, in integers, so
    # rounding never puts the box outside the picture (49 px -> 64 did: "box offset negative").
    if w * height >= h * width:
      ch = h * width / w
      box = (0, (height - ch) / 2, width, (height + ch) / 2)
    else:
      cw = w * height / h
      box = ((width - cw) / 2, 0, (width + cw) / 2, height)
    im = im.resize((w, h), Image.BILINEAR, box=box)
  return np.asarray(im, np.uint8).reshape(h, w, c)


def fit_array(image, shape):
  """A uint8 (H, W, C) array -> `shape`, through `fit` unless it already has the shape."""
  from PIL import Image
  image = np.asarray(image)
  if image.shape == tuple(shape):
    return image.astype(np.uint8, copy=False)
  image = image.astype(np.uint8, copy=False)
  mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[image.shape[-1]]
  return fit(Image.fromarray(image[..., 0] if mode == "L" else image, mode), shape)


def read(path, shape):
  """A picture file -> uint8 array of `shape`; an unreadable file is a UserError naming it."""
  from PIL import Image
  try:
    with Image.open(path) as im:
      if im.format == "JPEG":  # decode at a reduced scale when that still covers the target
        im.draft(im.mode, (shape[1], shape[0]))
      return fit(im, shape)
  except FileNotFoundError:
    raise UserError(f"image file {path!r} does not exist") from None
  except IsADirectoryError:
    raise UserError(f"{path!r} is a directory; pass an image file (PNG, JPEG, ...)") from None
  except (OSError, ValueError, SyntaxError) as err:  # PIL's errors for bad files
    raise UserError(f"{path!r} is not a readable image ({_why(err)}); check the file "
                    "(cnnlab reads PNG, JPEG, BMP, GIF and WebP pictures)") from None


def _why(err):
  return " ".join(str(err).split())[:120] or type(err).__name__


def check_size(side, where):
  """An image side within 1..MAX_IMAGE_SIZE, or a UserError naming the fix."""
  if side > MAX_IMAGE_SIZE:
    raise UserError(f"{where} is {side} pixels, above the {MAX_IMAGE_SIZE} cnnlab accepts "
                    f"(larger sides are nearly always a mistake, and resident data and the "
                    f"models' dense layers grow with its square); set --config.image_size=N "
                    f"with N <= {MAX_IMAGE_SIZE}, e.g. 64")
