"""`edges`: the course's two edge masks on a real Fashion-MNIST image, saved as one figure.

  ./launch.sh edges --index=0 --out=runs/figures/edges.png

Shows what a single hand-made filter detects before any training: the vertical mask lights up
where brightness changes left to right, the horizontal mask where it changes top to bottom.
"""

import os

from absl import flags

from cnnlab.cli.common import require
from cnnlab.files import writable_dir

flags.DEFINE_integer("index", 0, "which training image to use (0-based)")
flags.DEFINE_string("data_dir", None, "directory with the Fashion-MNIST IDX files "
                    "(default: the system copy, else TFDS)")
flags.DEFINE_string("out", "runs/figures/edges.png", "where to save the PNG figure")
FLAGS = flags.FLAGS


def edge_responses(image):
  """(vertical, horizontal) feature maps of a (H, W) image in [0, 1], SAME so sizes match."""
  import numpy as np
  from cnnlab import ops  # JAX: imported here, so `edges --help` starts fast
  return tuple(np.asarray(ops.conv2d(image, mask, padding="same"))
               for mask in (ops.VERTICAL_EDGE, ops.HORIZONTAL_EDGE))


def save_figure(image, title, out):
  """Original plus both responses; a symmetric colour scale keeps sign (dark->light vs back)."""
  import numpy as np
  from cnnlab.cli import common
  common.setup_figures()
  import matplotlib.pyplot as plt
  vertical, horizontal = edge_responses(image)
  fig, axes = plt.subplots(1, 3, figsize=(9, 3.4))
  axes[0].imshow(image, cmap="gray", vmin=0, vmax=1)
  axes[0].set_title(title)
  for ax, response, name in ((axes[1], vertical, "vertical edge"),
                             (axes[2], horizontal, "horizontal edge")):
    limit = float(np.abs(response).max()) or 1.0
    im = ax.imshow(response, cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_title(f"{name} mask")
    fig.colorbar(im, ax=ax, fraction=0.046)
  for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
  fig.tight_layout()
  fig.savefig(out, dpi=100)
  plt.close(fig)


def main(argv):
  require(FLAGS.out.lower().endswith(".png"), f"--out={FLAGS.out!r} must end in .png")
  import numpy as np
  from cnnlab import ops
  from cnnlab.data import class_names, load_split
  images, labels = load_split("fashion_mnist", "train", FLAGS.data_dir)
  require(0 <= FLAGS.index < len(images), f"--index={FLAGS.index} is out of range; the "
          f"training split has images 0..{len(images) - 1}")
  writable_dir(os.path.dirname(FLAGS.out) or ".", "out")
  image = images[FLAGS.index, :, :, 0].astype(np.float32) / 255.0
  label = int(labels[FLAGS.index])
  name = class_names("fashion_mnist")[label]
  save_figure(image, f"train[{FLAGS.index}]: {name}", FLAGS.out)
  print(f"saved {FLAGS.out} (image {FLAGS.index}, {name}; masks vertical "
        f"{ops.VERTICAL_EDGE.tolist()} and horizontal {ops.HORIZONTAL_EDGE.tolist()})")
