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

from cnnlab.errors import UserError, is_disk_full

CONFIG, RESULTS, METRICS, TIMINGS = "config.json", "results.json", "metrics.jsonl", "timings.jsonl"
CHECKPOINTS, UNUSABLE = "checkpoints", "checkpoints-unusable"
TENSORBOARD, FIGURES, LOCK = "tensorboard", "figures", ".lock"
STDOUT, STDERR = "stdout.log", "stderr.log"  # a sweep point's captured output
PREVIOUS_RESULTS = "results-epoch{}.json"  # results.json of a finished run trained on later
BEST_METRIC = "val_loss"  # lower is better: the best epoch (and step) of a run has the lowest


def best(history):
  """The epoch record with the lowest validation loss (the run's best step), or None."""
  return min(history, key=lambda r: r[BEST_METRIC]) if history else None


def flatten(config, prefix=""):
  """{'optimizer.learning_rate': 0.001, ...}: a config's (or config.json's) leaves by name."""
  flat = {}
  for key, value in config.items():
    if hasattr(value, "items"):
      flat.update(flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def read_json(path):
  """A JSON file's content; a damaged file is a UserError naming it, not a traceback."""
  with open(path) as f:
    text = f.read()
  try:
    return json.loads(text)
  except ValueError as err:
    raise UserError(f"{path} is damaged (not valid JSON: {err}); restore it from a backup or "
                    "use a new --workdir") from None


def write_json(path, obj):
  """Write JSON atomically (temp file + rename), so a kill never leaves half a file."""
  tmp = f"{path}.tmp"
  try:
    with open(tmp, "w") as f:
      json.dump(obj, f, indent=2, sort_keys=True)
      f.write("\n")
    os.replace(tmp, path)
  except OSError as err:
    if not is_disk_full(err):
      raise
    if os.path.exists(tmp):
      os.remove(tmp)
    raise UserError(f"no space left on device while writing {path}; the previous version is "
                    "kept: free space and resume (run the same command again)") from None


def read_jsonl(path):
  """The complete records of a JSON-lines file; [] when absent (a kill's half line is skipped)."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.endswith("\n") and line.strip()]


def check_writable(path, what="workdir"):
  """UserError unless `path` is a writable directory or could be created as one (creates nothing)."""
  parent = path
  while not os.path.exists(parent):
    parent = os.path.dirname(os.path.abspath(parent))
  if not os.path.isdir(parent):
    raise UserError(f"cannot create {what} {path!r} ({parent!r} is a file); choose another "
                    f"with --{what}")
  if not os.access(parent, os.W_OK | os.X_OK):
    raise UserError(f"{what} {path!r} is not writable; choose another with --{what}")
  return path


def writable_dir(path, what="workdir"):
  """Create `path` if needed and check it can be written; UserError naming the fix if not."""
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as err:
    raise UserError(f"cannot create {what} {path!r} ({err.strerror}); choose another with "
                    f"--{what}") from None
  if not os.access(path, os.W_OK | os.X_OK):
    raise UserError(f"{what} {path!r} is not writable; choose another with --{what}")
  return path


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

  def create(self):
    if self.primary:
      writable_dir(self.dir)
    return self

  @contextlib.contextmanager
  def created(self):
    """The directory, created for the `with` block. If the block fails before a checkpoint
    was saved in a directory it created, the directory is removed again: a command that
    fails early leaves nothing behind (an existing directory is never touched)."""
    new = self.primary and not os.path.exists(self.dir)
    self.create()
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
    """The ConfigDict this run was trained with (UserError when there is none)."""
    if not os.path.isdir(self.dir):
      raise UserError(f"workdir {self.dir!r} does not exist; pass the --workdir of a training "
                      "run")
    if not self.has_config:
      raise UserError(f"{self.dir!r} has no {CONFIG}, so it is not a cnnlab run (or it was "
                      "damaged); pass the --workdir of a training run")
    return ml_collections.ConfigDict(read_json(self.path(CONFIG)))

  def read_saved_config(self):
    """config.json as plain JSON (for comparing with a new config)."""
    return read_json(self.path(CONFIG))

  def write_config(self, config):
    if self.primary:
      write_json(self.path(CONFIG), json.loads(config.to_json_best_effort()))

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

  def epoch_log(self, history, log=print):
    """An EpochLog whose files hold exactly `history` (the epochs the checkpoint has)."""
    return EpochLog(self, history, log) if self.primary else SilentEpochLog()

  def describe(self):
    return (f"checkpoints: {self.path(CHECKPOINTS)}  metrics: {self.path(METRICS)}  "
            f"tensorboard: {self.path(TENSORBOARD)}  results: {self.path(RESULTS)}")


class EpochLog:
  """Where finished epochs go: metrics.jsonl, timings.jsonl, TensorBoard and `log`.

  metrics.jsonl is the run's history: a resume truncates it (and timings.jsonl) to the
  epochs of the restored checkpoint, so an epoch finished after the last save is replayed,
  never listed twice.
  """

  def __init__(self, run, history, log=print):
    self.run, self.log = run, log
    keep = {r["epoch"] for r in history}
    with open(run.path(METRICS), "w") as f:
      f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in history)
    timings = [t for t in run.timings() if t["epoch"] in keep]
    with open(run.path(TIMINGS), "w") as f:
      f.writelines(json.dumps(t) + "\n" for t in timings)
    # Imported here: tensorboardX imports torch when it is installed (1.4 s of start-up).
    from tensorboardX import SummaryWriter
    self.tb = SummaryWriter(run.path(TENSORBOARD))

  def write(self, record, images_per_s, epoch_time_s, best, num_epochs):
    with open(self.run.path(METRICS), "a") as f:
      f.write(json.dumps(record, sort_keys=True) + "\n")
    with open(self.run.path(TIMINGS), "a") as f:
      f.write(json.dumps({"epoch": record["epoch"], "images_per_s": round(images_per_s, 1),
                          "epoch_time_s": round(epoch_time_s, 3)}) + "\n")
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
      self.tb.add_scalar(key.replace("_", "/", 1), record[key], record["epoch"])
    self.tb.add_scalar("perf/images_per_s", images_per_s, record["epoch"])
    self.tb.flush()
    self.log(f"epoch {record['epoch']:>2}/{num_epochs}  train loss {record['train_loss']:.4f} "
             f"acc {record['train_accuracy']:.4f} | val loss {record['val_loss']:.4f} "
             f"acc {record['val_accuracy']:.4f} | {images_per_s:,.0f} img/s "
             f"{epoch_time_s:.1f} s{'  *best' if best else ''}")

  def write_hparams(self, results):
    """Once, at the end: the run's config and results for TensorBoard's HParams tab, so
    `tensorboard --logdir runs` compares every run and sweep point: session start/end
    records and the results as scalars `results/...`. No experiment record (add_hparams
    writes one per run): without one, TensorBoard builds the table from every run's."""
    from tensorboardX.summary import hparams as hparams_summary
    hparams = {k: v if isinstance(v, (bool, int, float, str)) else json.dumps(v)
               for k, v in flatten(self.run.read_saved_config()).items() if v is not None}
    metrics = {f"results/{k}": results[k] for k in ("test_accuracy", "val_accuracy")}
    _, start, end = hparams_summary(hparams, metrics)
    self.tb.file_writer.add_summary(start)
    for tag, value in metrics.items():
      self.tb.add_scalar(tag, value, results["epochs"])
    self.tb.file_writer.add_summary(end)
    self.tb.flush()

  def close(self):
    self.tb.close()


class SilentEpochLog:
  """The epoch log of a non-primary process: it writes and prints nothing."""

  def write(self, record, **timings):
    pass

  def close(self):
    pass


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
