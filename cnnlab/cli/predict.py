"""`predict`: classify one picture (or one dataset image) with a trained run's checkpoint.

  ./launch.sh predict --workdir=runs/t1 --image=shoe.png [--lang=ko] [--chart=shoe_probs.png]
  ./launch.sh predict --workdir=runs/t1 --index=0 --split=validation

A picture is made to look like the training data (28x28 grey, light object on black): a
picture with a light border is inverted (see --invert), cropped to the object and resized.
"""

import sys

from absl import flags

from cnnlab.errors import UserError

_WORKDIR = flags.DEFINE_string("workdir", None, "run directory of a training run (required)")
_WHICH = flags.DEFINE_enum("which", "best", ["best", "latest"],
                           "checkpoint: best (lowest validation loss) or latest")
_IMAGE = flags.DEFINE_string("image", None, "picture file to classify (PNG, JPEG, ...)")
_INDEX = flags.DEFINE_integer("index", None, "classify image INDEX of --split instead")
_SPLIT = flags.DEFINE_string("split", "validation", "split of --index: validation (the "
                             "held-out part) or train (the training file in its own order)")
_INVERT = flags.DEFINE_enum("invert", "auto", ["auto", "yes", "no"],
                            "invert --image: auto = when its border is light (the data is a "
                            "light object on black)")
_TOP = flags.DEFINE_integer("top", 3, "how many classes to print")
_LANG = flags.DEFINE_enum("lang", "en", ["en", "ko"], "class names: English or the course's "
                          "Korean")
_CHART = flags.DEFINE_string("chart", None, "also save the bar chart of all class "
                             "probabilities to this file (.png/.svg/.pdf)")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "directory with the IDX files (default: the "
                                "run's config.data_dir)")


def main(argv):
  if not _WORKDIR.value:
    raise UserError("pass --workdir=DIR, the directory of a training run")
  if _TOP.value < 1:
    raise UserError(f"--top={_TOP.value} must be at least 1")
  from cnnlab import rundir
  rundir.Run(_WORKDIR.value).read_config()  # not a run: say so before JAX starts (~2 s)
  from cnnlab.cli import common
  common.setup_jax()
  common.setup_figures()
  from cnnlab.inspect import plots, predict
  probs, names, x, what, _ = predict.classify(
      _WORKDIR.value, _IMAGE.value, _INDEX.value, _SPLIT.value, _WHICH.value, _INVERT.value,
      _LANG.value, _DATA_DIR.value)
  print(what)
  for rank, (name, p) in enumerate(predict.top_k(probs, names, _TOP.value), 1):
    print(f"  {rank}. {name}  {p:.4f}")
  if _CHART.value:
    chart_names = names
    if _LANG.value == "ko" and not plots.use_hangul_font():
      chart_names = predict.class_names(rundir.Run(_WORKDIR.value).read_config(), "en")
      print("cnnlab: note: no font with Hangul is installed, so the chart uses English names",
            file=sys.stderr)
    fig = plots.probability_chart(probs, chart_names, x)
    try:
      print(f"chart: {plots.save(fig, _CHART.value)}")
    except (OSError, ValueError) as err:
      raise UserError(f"cannot write the chart to {_CHART.value!r} ({err})") from None
