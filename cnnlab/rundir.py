"""The run directory: the only code that knows what a run (or a sweep) keeps on disk.

  config.json           the run's config (written once; a resume must match it)
  checkpoints/<step>/   Orbax steps (cnnlab.checkpoint: arrays + an integrity record)
  checkpoints-unusable/ steps that failed their checks, moved aside on resume (kept for a person)
  metrics.jsonl         one line per finished epoch, deterministic numbers only: the history
  timings.jsonl         wall-clock numbers of the same epochs (images/s, seconds)
  tensorboard/          TensorBoard events of the same epochs
  results.json          written once at the end; its presence means "finished"
                        (status(): finished, running, interrupted, failed; see Run.status)
  results-epoch<E>.json results.json of E epochs, kept when the run was extended on purpose
  figures/              what `viz` draws
  export/               what `export` writes (the weights for numpy, Keras, PyTorch)
  .lock                 held by the process training in it

Train, resume, viz, predict, sweep and bench ask a `Run`; none spells a file name.
In a multi-process run every process opens the same `Run`; only the primary one (process 0)
creates, locks and writes its files (Orbax writes the checkpoints with all processes).
"""

import contextlib
import fcntl
import json
import os
import shutil

import ml_collections

from cnnlab.errors import UserError
from cnnlab.files import check_writable, read_json, read_jsonl, write_json, writable_dir

CONFIG, RESULTS, METRICS, TIMINGS = "config.json", "results.json", "metrics.jsonl", "timings.jsonl"
CHECKPOINTS, UNUSABLE = "checkpoints", "checkpoints-unusable"
TENSORBOARD, FIGURES, LOCK = "tensorboard", "figures", ".lock"
STDOUT, STDERR = "stdout.log", "stderr.log"  # a sweep point's captured output
PREVIOUS_RESULTS = "results-epoch{}.json"  # results.json of a finished run trained on later
EXPORT = "export"  # the directory `export` writes into by default
BEST_METRIC = "val_loss"  # lower is better: the best epoch (and step) of a run has the lowest


def best(history):
  """The epoch record with the lowest validation loss (the run's best step), or None."""
  return min(history, key=lambda r: r[BEST_METRIC]) if history else None


def config_json(config):
  """A ConfigDict as its config.json holds it (plain JSON: tuples become lists)."""
  return json.loads(config.to_json_best_effort())


def flatten(config, prefix=""):
  """{'optimizer.learning_rate': 0.001, ...}: a config's (or config.json's) leaves by name
  (the one flattener: resume checks, the runs table, sweeps and TensorBoard's hparams)."""
  flat = {}
  for key, value in config.items():
    if hasattr(value, "items"):
      flat.update(flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


@contextlib.contextmanager
def locked(directory):
  """Hold an exclusive lock on `directory` (one writer at a time) for the `with` block.

  flock is released by the kernel when the process dies, so a stale lock cannot exist;
  the file records the owner's pid for the error message.
  """
  fd = os.open(os.path.join(directory, LOCK), os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
    os.close(fd)
    raise UserError(f"workdir {directory!r} is in use by pid {owner}; wait for that run to "
                    "finish or choose another --workdir") from None
  try:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    yield
  finally:
    os.close(fd)


class Run:
  """One training run's directory: paths, config, history, results, lock and "finished?".

  `primary=False` (processes 1..N-1 of a multi-process run) reads but never writes.
  """

  def __init__(self, workdir, primary=True):
    self.dir = str(workdir)
    self.primary = primary

  def path(self, name):
    return os.path.join(self.dir, name)

  checkpoints_dir = property(lambda self: os.path.abspath(self.path(CHECKPOINTS)))
  unusable_dir = property(lambda self: os.path.abspath(self.path(UNUSABLE)))
  finished = property(lambda self: os.path.exists(self.path(RESULTS)))
  has_config = property(lambda self: os.path.exists(self.path(CONFIG)))
  config_path = property(lambda self: self.path(CONFIG))

  @contextlib.contextmanager
  def created(self):
    """The directory, created for the `with` block. If the block fails before a checkpoint
    was saved in a directory it created, the directory is removed again: a command that
    fails early leaves nothing behind (an existing directory is never touched)."""
    new = self.primary and not os.path.exists(self.dir)
    if self.primary:
      writable_dir(self.dir)
    try:
      yield self
    except BaseException:
      if new and not self.has_checkpoints:
        shutil.rmtree(self.dir, ignore_errors=True)
      raise

  @property
  def has_checkpoints(self):
    """A finished Orbax step exists (its directory has its final, numeric name)."""
    return os.path.isdir(self.checkpoints_dir) and any(
        name.isdigit() for name in os.listdir(self.checkpoints_dir))

  def lock(self):
    return locked(self.dir) if self.primary else contextlib.nullcontext()

  @property
  def in_use(self):
    """A process holds the lock: a training is in progress (probed, released at once)."""
    try:
      fd = os.open(self.path(LOCK), os.O_RDONLY)
    except OSError:
      return False
    try:
      fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
      return False
    except BlockingIOError:
      return True
    finally:
      os.close(fd)

  def status(self):
    """finished (results.json), running (locked), interrupted (checkpoints but no results:
    `train` resumes it), failed (config.json but no checkpoint: it stopped before its first
    epoch ended), or None (not a run)."""
    if self.finished:
      return "finished"
    if not (self.has_checkpoints or self.has_config):
      return None
    if self.in_use:
      return "running"
    return "interrupted" if self.has_checkpoints else "failed"

  def read_config(self):
    """The ConfigDict this run was trained with (UserError when there is none); the same as
    plain JSON: read_config_json."""
    if not os.path.isdir(self.dir):
      raise UserError(f"workdir {self.dir!r} does not exist; pass the --workdir of a training "
                      "run")
    if not self.has_config:
      raise UserError(f"{self.dir!r} has no {CONFIG}, so it is not a cnnlab run (or it was "
                      "damaged); pass the --workdir of a training run")
    return ml_collections.ConfigDict(read_json(self.path(CONFIG)))

  def read_config_json(self):
    """config.json as plain JSON (for comparing with a new config, flattening)."""
    return read_json(self.path(CONFIG))

  def write_config(self, config):
    if self.primary:
      write_json(self.path(CONFIG), config_json(config))

  def set_results_aside(self, epochs):
    """Rename results.json (a run about to be trained on) to results-epoch<epochs>.json; its path."""
    path = self.path(PREVIOUS_RESULTS.format(epochs))
    os.replace(self.path(RESULTS), path)
    return path

  def read_results(self):
    return read_json(self.path(RESULTS))

  def write_results(self, results):
    if self.primary:
      write_json(self.path(RESULTS), results)

  def history(self):
    """Per-epoch metrics (metrics.jsonl), possibly empty."""
    return read_jsonl(self.path(METRICS))

  def timings(self):
    return read_jsonl(self.path(TIMINGS))

  def figures_dir(self, out=None, create=True):
    """Where figures go (--out or figures/); checked, and created only when `create`."""
    path = out or self.path(FIGURES)
    return writable_dir(path, "out") if create else check_writable(path, "out")

  def describe(self):
    return (f"checkpoints: {self.path(CHECKPOINTS)}  metrics: {self.path(METRICS)}  "
            f"tensorboard: {self.path(TENSORBOARD)}  results: {self.path(RESULTS)}")


class SweepDir:
  """A sweep's directory: its record, its point index, its reports and one Run per point."""
  RECORD, POINTS, REPORT = "sweep.json", "points.json", "results"
  SLURM, SLURM_LOG = "sweep.slurm", "slurm-%A_%a.out"  # the job array and its tasks' output

  def __init__(self, workdir):
    self.dir = str(workdir)

  def path(self, name):
    return os.path.join(self.dir, name)

  def point(self, name):
    return Run(self.path(name))

  def read_record(self):
    return read_json(self.path(self.RECORD)) if os.path.exists(self.path(self.RECORD)) else None

  def write_record(self, record):
    write_json(self.path(self.RECORD), record)

  def read_points(self):
    return read_json(self.path(self.POINTS)) if os.path.exists(self.path(self.POINTS)) else {}

  def write_points(self, points):
    write_json(self.path(self.POINTS), points)

  def report(self, ext):
    return self.path(f"{self.REPORT}.{ext}")
