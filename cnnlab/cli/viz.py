"""`viz`: draw what a trained run learned, from its checkpoints (it never trains).

  ./launch.sh viz --workdir=runs/t1 [--layer=conv1,conv2] [--index=0 --split=train | --image=F]
                 [--kernel_range=course|max]

writes PNGs into <workdir>/figures/ (or --out) and prints their paths, one per line. An
unfinished run is drawn from the step restored, labelled as such, with how to resume it.
"""

from absl import flags

from cnnlab.errors import UserError

_WORKDIR = flags.DEFINE_string("workdir", None, "run directory of a training run (required)")
_WHICH = flags.DEFINE_enum("which", "best", ["best", "latest"],
                           "checkpoint: best (lowest validation loss) or latest")
_LAYER = flags.DEFINE_list("layer", [], "conv layers to draw (kernels of the first, feature maps "
                           "of each); default: the model's first two conv layers")
_INDEX = flags.DEFINE_integer("index", 0, "image for the feature maps: index in --split "
                              "(train image 0 is the course's ankle boot)")
_SPLIT = flags.DEFINE_string("split", "train", "split of --index: train (the training file in "
                             "its own order) or validation (the held-out part)")
_IMAGE = flags.DEFINE_string("image", None, "picture file (PNG/JPEG) for the feature maps "
                             "instead of --index")
_INVERT = flags.DEFINE_enum("invert", "auto", ["auto", "yes", "no"],
                            "invert --image (auto: when its border is light)")
_MISTAKES = flags.DEFINE_integer("mistakes", 16, "how many of the worst validation mistakes")
_KERNEL_RANGE = flags.DEFINE_enum("kernel_range", "course", ["course", "max"],
                                  "colours of the kernel figure: course (the course's fixed "
                                  "-0.5..0.5) or max (the kernels' own +-max |w|)")
_OUT = flags.DEFINE_string("out", None, "directory for the figures (default: WORKDIR/figures)")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "directory with the IDX files (default: the "
                                "run's config.data_dir)")


def main(argv):
  if not _WORKDIR.value:
    raise UserError("pass --workdir=DIR, the directory of a training run")
  if _IMAGE.value and flags.FLAGS["index"].present:
    raise UserError("pass either --image or --index, not both")
  from cnnlab import rundir
  rundir.Run(_WORKDIR.value).read_config()  # not a run: say so before JAX starts (~2 s)
  from cnnlab.cli import common
  common.setup_jax()
  common.setup_figures()
  from cnnlab.inspect import report  # after setup_jax: imports jax
  figures = report.Figures(
      which=_WHICH.value, layers=tuple(_LAYER.value), split=_SPLIT.value, index=_INDEX.value,
      image=_IMAGE.value, invert=_INVERT.value, mistakes=_MISTAKES.value,
      kernel_range=_KERNEL_RANGE.value, data_dir=_DATA_DIR.value)
  for path in report.write_figures(_WORKDIR.value, _OUT.value, figures):
    print(path)
