"""`export`: write a run's trained weights for numpy, the course's Keras 3 or PyTorch model.

  ./launch.sh export --workdir=runs/t1 --format=npz|keras|torch [--out=FILE] [--which=latest]

npz: every variable by path ("params/conv1/kernel"), any model. keras (.keras, or
.weights.h5 for model.load_weights) and torch (a state_dict .pt): the course CNN
(textbook_cnn at the course's sizes), for the models in cnnlab/inspect/reference_models.py;
they take pixels / 255, as cnnlab does. Default --out: WORKDIR/export/<model>.<npz|keras|pt>.
"""

from absl import flags

from cnnlab.errors import UserError

_WORKDIR = flags.DEFINE_string("workdir", None, "run directory of a training run (required)")
_FORMAT = flags.DEFINE_enum("format", "npz", ["npz", "keras", "torch"],
                            "npz (any model), keras or torch (the course CNN)")
_OUT = flags.DEFINE_string("out", None, "file to write (default: WORKDIR/export/<model>.<ext>)")
_WHICH = flags.DEFINE_enum("which", "best", ["best", "latest"],
                           "checkpoint: best (lowest validation loss) or latest")
_SEED_INDEX = flags.DEFINE_integer("seed_index", 0, "which seed of a multi-seed run")


def main(argv):
  if not _WORKDIR.value:
    raise UserError("pass --workdir=DIR, the directory of a training run")
  from cnnlab import rundir
  rundir.Run(_WORKDIR.value).read_config()  # not a run: say so before JAX starts (~2 s)
  from cnnlab.cli import common
  common.setup_jax()
  from cnnlab.inspect import export
  print(export.export(_WORKDIR.value, _FORMAT.value, _OUT.value, _WHICH.value,
                      _SEED_INDEX.value))
