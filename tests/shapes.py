"""A folder dataset made with PIL for tests (fake data, and said so): 10 classes of drawn shapes.

Mixed sizes (20..44 px, some not square), grey and RGB, JPEG and PNG, each image drawn at a
random place, size and colour by one seed, so the same folder (and the same results) come back.
"""

import os

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("bar", "circle", "cross", "diamond", "ring", "square", "stripe", "triangle",
           "vee", "x")


def _draw(d, name, box, colour, width):
  x0, y0, x1, y1 = box
  cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
  shapes = {
      "bar": lambda: d.rectangle([x0, cy - width, x1, cy + width], fill=colour),
      "circle": lambda: d.ellipse(box, fill=colour),
      "cross": lambda: (d.line([cx, y0, cx, y1], colour, width),
                        d.line([x0, cy, x1, cy], colour, width)),
      "diamond": lambda: d.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=colour),
      "ring": lambda: d.ellipse(box, outline=colour, width=width),
      "square": lambda: d.rectangle(box, fill=colour),
      "stripe": lambda: d.rectangle([cx - width, y0, cx + width, y1], fill=colour),
      "triangle": lambda: d.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=colour),
      "vee": lambda: d.line([(x0, y0), (cx, y1), (x1, y0)], colour, width),
      "x": lambda: (d.line([x0, y0, x1, y1], colour, width),
                    d.line([x0, y1, x1, y0], colour, width)),
  }
  shapes[name]()


def picture(name, rng, grey):
  """One PIL picture of shape `name`: a random size, place and colour on a dark background."""
  w, h = int(rng.integers(20, 45)), int(rng.integers(20, 45))
  side = int(min(w, h) * rng.uniform(0.5, 0.8))
  x0, y0 = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
  colour = tuple(int(c) for c in rng.integers(150, 256, 3))
  im = Image.new("L" if grey else "RGB", (w, h), int(rng.integers(0, 60)) if grey else
                 tuple(int(c) for c in rng.integers(0, 60, 3)))
  _draw(ImageDraw.Draw(im), name, (x0, y0, x0 + side, y0 + side),
        colour[0] if grey else colour, max(2, side // 6))
  return im


def make_folder(root, per_class=30, seed=0):
  """root/CLASS/NNN.{png,jpg}: `per_class` pictures of each class; returns root."""
  rng = np.random.default_rng(seed)
  for name in CLASSES:
    os.makedirs(os.path.join(root, name), exist_ok=True)
    for i in range(per_class):
      im = picture(name, rng, grey=bool(i % 3 == 0))
      ext = "jpg" if i % 2 else "png"
      im.save(os.path.join(root, name, f"{i:03d}.{ext}"), quality=90)
  return str(root)
