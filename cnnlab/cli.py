"""Shell entry plumbing: absl flags in, one clear line and exit code 2 out for user mistakes.

absl alone exits 1 with the whole usage on a bad flag and shows tracebacks for a missing
`--config` file or unknown `--config.key` (LESSONS.md); `run` rewrites those into one line.
Unexpected errors keep their traceback (exit 1): they are bugs, not user mistakes.
"""

import os
import re
import sys

from absl import app, flags, logging

from cnnlab.errors import UserError

PROG = "cnnlab"


def fail(message):
  """Print `cnnlab: error: <message>` on one line and exit with code 2."""
  line = " ".join(str(message).split())
  print(f"{PROG}: error: {line}", file=sys.stderr, flush=True)
  sys.exit(2)


def _explain_flag_error(err):
  text = str(err)
  m = re.search(r"Failed loading config file (\w+)", text)
  if m or "config_file" in text and "No such file" in text:
    path = flags.FLAGS["config"].serialize() if "config" in flags.FLAGS else ""
    return (f"cannot load the config file ({text.splitlines()[-1].strip()}); pass an existing "
            f"file, e.g. --config=experiments/textbook.py {path}".strip())
  return text.splitlines()[0] if text else repr(err)


def _parse(argv):
  try:
    return flags.FLAGS(argv)
  except flags.UnrecognizedFlagError as err:
    fail(f"unknown flag --{err.flagname}; see --help for the flags this command takes")
  except flags.IllegalFlagValueError as err:
    fail(f"bad flag value: {_explain_flag_error(err)}")
  except KeyError as err:  # unknown --config.key
    key = str(err).strip("'\"")
    fail(f"the config has no field {key}; list the fields with --helpfull or check the spelling")
  except (flags.Error, ValueError, TypeError, OSError, AttributeError) as err:
    fail(_explain_flag_error(err))


def run(main, argv=None):
  """`app.run(main)`, with UserError and flag errors reported as one line and exit 2."""

  def checked_main(argv):
    logging.set_verbosity(logging.ERROR)  # Orbax logs every save at INFO, and more
    try:
      return main(argv)
    except UserError as err:
      fail(err)
    except KeyboardInterrupt:
      print(f"{PROG}: interrupted", file=sys.stderr)
      sys.exit(130)

  app.run(checked_main, argv=argv, flags_parser=_parse)


def setup_jax():
  """Process-wide JAX settings for shell commands: a persistent compilation cache.

  Reruns of the same config then skip XLA compilation (seconds on CPU, most of a short GPU
  run). CNNLAB_JAX_CACHE picks the directory; an empty value turns the cache off.
  """
  import jax
  cache = os.environ.get("CNNLAB_JAX_CACHE",
                         os.path.join(os.path.expanduser("~"), ".cache", "cnnlab", "jax"))
  if cache:
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def require(condition, message):
  """Raise a UserError with `message` unless `condition` holds."""
  if not condition:
    raise UserError(message)


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
