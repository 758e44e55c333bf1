"""`train`: train a config in a workdir (resuming it when it holds checkpoints).

A workdir holding a run resumes with its own config.json unless --config is given:
`./launch.sh train --workdir=W` is the whole resume command. --config.FIELD=value overrides
apply on top of it and, with --workdir named, count as changes made on purpose (e.g.
--config.num_epochs=30 extends the run); a --config given on resume must match config.json
(cnnlab/train/lifecycle.py).
"""

import os

from absl import flags
from ml_collections import config_flags

from cnnlab import supervisor
from cnnlab.cli import common
from cnnlab.errors import UserError
from cnnlab.train import lifecycle  # no JAX: the saved config is read before JAX starts

_CONFIG = config_flags.DEFINE_config_file(
    "config", common.DEFAULT_CONFIG,
    "experiment config file; override fields with --config.FIELD=value", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory (default: runs/<config name>)")
_DATA_DIR = flags.DEFINE_string("data_dir", None,
                                "directory with the IDX files (default: config.data_dir, then "
                                "/usr/share/datasets/<dataset>, then TFDS)")
_RESUME = flags.DEFINE_bool("resume", True, "continue from the workdir's latest checkpoint")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "multi-host: call jax.distributed.initialize() first (coordinator "
    "address, process count and id from the environment, as on Cloud TPU pods or SLURM)")


def default_workdir(config_path):
  name = os.path.splitext(os.path.basename(config_path.split(":")[0]))[0]
  return os.path.join("runs", name)


DETERMINISTIC_FLAG = "--xla_gpu_deterministic_ops=true"


def set_deterministic(config, environ=os.environ):
  """Add XLA's deterministic-GPU flag to XLA_FLAGS when config.deterministic is on.

  XLA reads XLA_FLAGS once, when JAX first initialises a backend, so this must run before
  any JAX operation. On CPU (already deterministic) the flag is harmless.
  """
  if not config.get("deterministic", False):
    return
  current = environ.get("XLA_FLAGS", "")
  if "xla_gpu_deterministic_ops" not in current:
    environ["XLA_FLAGS"] = f"{current} {DETERMINISTIC_FLAG}".strip()


def main(argv):
  for flag in (_WORKDIR, _DATA_DIR):  # `--workdir --config.x=1` would take the flag as a path
    if (flag.value or "").startswith("-"):
      raise UserError(f"--{flag.name} got {flag.value!r}, which looks like a flag; write "
                      f"--{flag.name}=PATH")
  config = common.load_config(_CONFIG)
  overrides = dict(config_flags.get_override_values(flags.FLAGS["config"]))
  if _DATA_DIR.value:
    config.data_dir = overrides["data_dir"] = _DATA_DIR.value
  config_path = config_flags.get_config_filename(flags.FLAGS["config"])
  workdir = _WORKDIR.value or default_workdir(config_path)
  if not flags.FLAGS["config"].present and _RESUME.value:
    config = lifecycle.saved_config(workdir, overrides) or config
  if _DISTRIBUTED.value:  # before JAX is imported: see cnnlab/supervisor.py
    supervisor.supervise()  # returns in the child process only
  set_deterministic(config)  # before setup_jax: the first JAX import/backend
  common.setup_jax()
  from cnnlab import parallel
  timeout = parallel.initialize_distributed() if _DISTRIBUTED.value else None
  from cnnlab.train import train_and_evaluate  # after setup_jax: imports jax
  # A run is changed on purpose only when named: not through the default workdir.
  on_purpose = tuple(overrides) if _WORKDIR.value else ()
  with parallel.peer_loss_reported(timeout):
    train_and_evaluate(config, workdir, resume=_RESUME.value, on_purpose=on_purpose)
