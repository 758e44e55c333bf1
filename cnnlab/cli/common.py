"""What every command shares: absl flags in, one clear line and exit code 2 out for user mistakes.

absl alone exits 1 with the whole usage on a bad flag and shows tracebacks for a missing
`--config` file or unknown `--config.key` (LESSONS.md); `run` rewrites those into one line.
Unexpected errors keep their traceback (exit 1): they are bugs, not user mistakes.
"""

import os
import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

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


def _unknown_field(err):
  """One line for an unknown --config.FIELD (ml_collections adds 'Did you mean ...?')."""
  key, _, hint = str(err.args[0] if err.args else err).partition("\n")
  hint = f" ({hint.strip().rstrip('?').lower()}?)" if hint.strip() else ""
  return (f"the config has no field {key.strip(chr(39))}{hint}; check the spelling "
          "(--helpfull lists the fields)")


def _underscored(arg):
  """--time-to-accuracy=0.91 -> --time_to_accuracy=0.91: absl names use underscores, people
  often type hyphens. Values and config fields (--config.a.b) are left alone."""
  if not arg.startswith("--") or arg == "--":
    return arg
  name, eq, value = arg[2:].partition("=")
  return arg if "." in name else "--" + name.replace("-", "_") + eq + value


def _parse(argv):
  argv = argv[:1] + [_underscored(a) for a in argv[1:]]
  try:
    return flags.FLAGS(argv)
  except flags.UnrecognizedFlagError as err:
    fail(f"unknown flag --{err.flagname}; see --help for the flags this command takes")
  except flags.IllegalFlagValueError as err:
    fail(f"bad flag value: {_explain_flag_error(err)}")
  except KeyError as err:
    fail(_unknown_field(err))
  except AttributeError as err:  # ml_collections wraps an unknown field's KeyError in one
    fail(_unknown_field(err.args[0]) if err.args and isinstance(err.args[0], KeyError)
         else _explain_flag_error(err))
  except (flags.Error, ValueError, TypeError, OSError) as err:
    fail(_explain_flag_error(err))


def run(main, argv=None):
  """`app.run(main)`, with UserError and flag errors reported as one line and exit 2."""

  def checked_main(argv):
    logging.set_verbosity(logging.ERROR)  # Orbax logs every save at INFO, and more
    # Commands take flags only (unless main.takes_args): a stray word is usually a missing "--".
    if len(argv) > 1 and not getattr(main, "takes_args", False):
      fail(f"unexpected argument(s) {' '.join(argv[1:])}; flags look like --name=value")
    try:
      return main(argv)
    except UserError as err:
      fail(err)
    except KeyboardInterrupt:
      print(f"{PROG}: interrupted", file=sys.stderr)
      sys.exit(130)

  app.run(checked_main, argv=argv, flags_parser=_parse)


def load_config(config_flag, flag_name="config"):
  """The ConfigDict of a `config_flags` flag, loaded now (ml_collections loads lazily).

  A missing or broken config file and bad `--config.FIELD` overrides become UserErrors.
  """
  path = config_flags.get_config_filename(flags.FLAGS[flag_name])
  try:
    config = config_flag.value
    config.keys()  # forces the lazy load
    return config
  except (OSError, ImportError, SyntaxError) as err:
    cause = err.__cause__ or err
    reason = " ".join(str(cause).split())[-200:] or repr(cause)
    if not os.path.isfile(path):
      reason = "no such file"
    raise UserError(f"cannot load --{flag_name}={path} ({reason}); pass a config file such as "
                    "--config=experiments/textbook.py") from None
  except KeyError as err:
    raise UserError(_unknown_field(err)) from None
  except (AttributeError, ValueError, TypeError) as err:
    raise UserError(f"bad --{flag_name} override: {' '.join(str(err).split())}; check the field "
                    "name and type in the config file") from None


def setup_jax():
  """Process-wide JAX settings for shell commands (cnnlab.compilation.use_persistent_cache)."""
  from cnnlab import compilation
  compilation.use_persistent_cache()


def require(condition, message):
  """Raise a UserError with `message` unless `condition` holds."""
  if not condition:
    raise UserError(message)
