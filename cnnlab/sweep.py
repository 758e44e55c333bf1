"""Grid sweeps: --sweep flags -> points -> one `train` subprocess each -> CSV, Markdown, plot.

Each point runs as its own process in its own workdir, so a crash (or an out-of-memory kill)
costs that point, not the sweep; re-running skips finished points and resumes the rest,
because `train` already does both. Only the standard library is imported at the top, so bad
flags are reported before JAX is loaded.
"""

import itertools
import os
import re
import signal
import subprocess
import time

from cnnlab.errors import UserError, closest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = "--sweep=config.optimizer.learning_rate=1e-3,3e-4"
METRICS = ("val_accuracy", "test_accuracy", "best_epoch", "epochs", "wall_time_s",
           "images_per_s")


def flatten(config, prefix=""):
  """{'optimizer.learning_rate': 0.001, ...}: a ConfigDict's leaf fields by dotted name."""
  flat = {}
  for key, value in config.items():
    if hasattr(value, "items"):
      flat.update(flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def parse_value(text, current, key):
  """`text` read as the type of the field's current value (bool, int, float or str)."""
  kind = type(current).__name__
  if isinstance(current, bool):
    if text.lower() in ("true", "1", "yes"):
      return True
    if text.lower() in ("false", "0", "no"):
      return False
    expected = "true or false"
  elif isinstance(current, (int, float)):
    try:
      return type(current)(text)
    except ValueError:
      expected = "an integer" if isinstance(current, int) else "a number"
  elif isinstance(current, str):
    return text
  else:
    raise UserError(f"config.{key} holds a {kind} ({current!r}); --sweep can vary only bool, "
                    "int, float and str fields")
  raise UserError(f"--sweep value {text!r} for config.{key} is not {expected} (the field is "
                  f"a {kind}, now {current!r})")


def parse_sweep(expr, flat):
  """'config.a.b=1,2' -> ('a.b', [1, 2]) with values typed like the field; else UserError."""
  if "=" not in expr:
    raise UserError(f"--sweep={expr} has no '='; write KEY=VALUES, e.g. {EXAMPLE}")
  key, _, values = expr.partition("=")
  key = key.strip()
  if not key.startswith("config."):
    raise UserError(f"--sweep key {key!r} must start with 'config.', e.g. {EXAMPLE}")
  key = key[len("config."):]
  if key not in flat:
    fields = [k for k in flat if k.startswith(key + ".")]
    if fields:
      raise UserError(f"config.{key} is a group of fields; sweep one of them, e.g. "
                      f"--sweep=config.{fields[0]}=...")
    raise UserError(f"the config has no field config.{key}{_suggest(key, flat)}")
  items = [v.strip() for v in values.split(",")]
  if not any(items) or not all(items):
    raise UserError(f"--sweep={expr} has an empty value; list values separated by commas, "
                    f"e.g. {EXAMPLE}")
  parsed = [parse_value(v, flat[key], key) for v in items]
  if len(set(parsed)) < len(parsed):
    raise UserError(f"--sweep={expr} lists a value twice; each value is one point")
  return key, parsed


def _suggest(key, flat):
  """' (did you mean X?)': same leaf elsewhere, an abbreviation (lr), else difflib's pick."""
  group, _, leaf = key.rpartition(".")
  initials = lambda name: "".join(w[:1] for w in name.split("_"))
  for match in (lambda k, g, lf: lf == leaf,
                lambda k, g, lf: g == group and (initials(lf) == leaf or lf.startswith(leaf))):
    hits = [k for k in flat if match(k, *k.rpartition(".")[::2])]
    if len(hits) == 1:
      return f" (did you mean 'config.{hits[0]}'?)"
  return closest("config." + key, ["config." + k for k in flat])


def parse_grid(exprs, config):
  """The --sweep flags -> [(key, values), ...]; UserError on an empty or malformed grid."""
  if not exprs:
    raise UserError(f"no --sweep given, so the grid is empty; add one or more, e.g. {EXAMPLE}")
  flat = flatten(config)
  axes = [parse_sweep(expr, flat) for expr in exprs]
  keys = [key for key, _ in axes]
  for key in keys:
    if keys.count(key) > 1:
      raise UserError(f"config.{key} is swept by two --sweep flags; list all its values in one")
  return axes


def expand_grid(axes):
  """Cartesian product of [(key, values), ...] -> [{key: value}, ...], the last key fastest."""
  keys = [key for key, _ in axes]
  return [dict(zip(keys, combo)) for combo in itertools.product(*(v for _, v in axes))]


def format_value(value):
  return repr(value) if isinstance(value, float) else str(value)


def point_name(point):
  """'optimizer.learning_rate=0.001,model.dropout=0.3': readable, and a valid directory name."""
  name = ",".join(f"{k}={format_value(v)}" for k, v in point.items())
  return re.sub(r"[^A-Za-z0-9._=,+-]", "_", name)


def point_names(points):
  """A directory name per point; numbered ones (point000, ...) when readable ones won't do."""
  names = [point_name(p) for p in points]
  if len(set(names)) < len(names) or max(map(len, names)) > 200:
    names = [f"point{i:03d}" for i in range(len(points))]
  return names


def override_flags(point):
  """The `train` flags that set a point's values: ['--config.model.dropout=0.3', ...]."""
  return [f"--config.{k}={format_value(v)}" for k, v in point.items()]


def apply_point(config, point):
  """A copy of `config` with the point's values set (for checking them before any run)."""
  config = config.copy_and_resolve_references()
  config.update_from_flattened_dict(point)
  return config


def _last_line(workdir, offsets):
  """The child's last 'cnnlab: ...' line, else its last stderr (then stdout) line this run."""
  for name, offset in zip(("stderr.log", "stdout.log"), offsets):
    try:
      with open(os.path.join(workdir, name), errors="replace") as f:
        f.seek(offset)
        lines = [ln.strip() for ln in re.split(r"[\r\n]", f.read()) if ln.strip()]
    except OSError:
      continue
    ours = [ln for ln in lines if ln.startswith("cnnlab:")]
    if ours or lines:
      return (ours or lines)[-1]
  return ""


def _start(argv, workdir, shared):
  os.makedirs(workdir, exist_ok=True)
  env = dict(os.environ)
  if shared:  # JAX takes 75% of a GPU's memory up front: side by side, take what is used
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH")]))
  stamp = f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n"
  with open(os.path.join(workdir, "stdout.log"), "a") as out, \
       open(os.path.join(workdir, "stderr.log"), "a") as err:
    for f in (out, err):
      f.write(stamp)
      f.flush()  # before the child writes to the same files
    proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
    return proc, (err.tell(), out.tell()), time.time()


def run_points(jobs, parallel=1, log=print):
  """Run jobs [(name, argv, workdir)], `parallel` at a time, each as its own subprocess.

  Returns ({name: (exit_code, last_stderr_line, seconds)}, signum or None). SIGINT/SIGTERM
  are passed on to the running children (which checkpoint and exit 130/143) and no further
  point starts; jobs never started are missing from the outcomes.
  """
  pending, running, outcomes, stop = list(jobs), {}, {}, []
  total = len(jobs)

  def handle(signum, frame):
    stop.append(signum)  # first: the log below may be interrupted by a second signal
    if len(stop) == 1:
      log(f"{signal.Signals(signum).name}: stopping {len(running)} running point(s) (they save "
          "a checkpoint); no new point starts")
    for proc, _, _, _ in list(running.values()):
      proc.send_signal(signum)

  old = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
  try:
    while running or (pending and not stop):
      while pending and not stop and len(running) < parallel:
        name, argv, workdir = pending.pop(0)
        log(f"[{total - len(pending)}/{total}] start {name} (log: {workdir}/stdout.log)")
        proc, offset, t0 = _start(argv, workdir, shared=parallel > 1)
        running[name] = (proc, offset, t0, workdir)
        if stop:  # a signal came while it was starting
          proc.send_signal(stop[-1])
      for name, (proc, offset, t0, workdir) in list(running.items()):
        if proc.poll() is None:
          continue
        del running[name]
        line = _last_line(workdir, offset)
        outcomes[name] = (proc.returncode, line, time.time() - t0)
        word = "done" if proc.returncode == 0 else "stopped" if stop else "FAILED"
        log(f"{word} {name} (exit {proc.returncode}, {time.time() - t0:.0f} s)"
            + (f": {line}" if proc.returncode and line else ""))
      time.sleep(0.1)
  finally:
    for s, handler in old.items():
      signal.signal(s, handler)
    for proc, _, _, _ in running.values():  # only on an unexpected error in this loop
      proc.terminate()
  return outcomes, (stop[0] if stop else None)
