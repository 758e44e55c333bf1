"""What every command shares: absl flags in, one clear line and exit code 2 out for user mistakes.

absl alone exits 1 with the whole usage on a bad flag and shows tracebacks for a missing
`--config` file or unknown `--config.key`; `run` rewrites those into one line.
Unexpected errors keep their traceback (exit 1): they are bugs, not user mistakes.
"""

import os
import re
import sys

from absl import app, flags, logging

from cnnlab.errors import UserError, closest, quiet_background_tracebacks
from cnnlab.repo import ROOT

PROG = "cnnlab"
DEFAULT_CONFIG = os.path.join(ROOT, "experiments", "textbook.py")  # every command's --config
SPEEDRUN_CONFIG = os.path.join(ROOT, "experiments", "speedrun_91.py")  # `speedrun`'s
HELP_FLAGS = ("-h", "--help", "-help", "--helpshort", "-?")


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


def missing_key(err):
  """(key, message) of ml_collections' KeyError for a missing field, or of the AttributeError
  around one: ('optimzer', "'optimzer'\\nDid you mean \"optimizer\" instead of ...?")."""
  if isinstance(err, AttributeError) and err.args and isinstance(err.args[0], KeyError):
    err = err.args[0]
  text = str(err.args[0] if err.args else err)
  return text.partition("\n")[0].strip("'\" "), text


def unknown_field(err, args=None):
  """One line for an unknown --config.FIELD: the field as typed, the nearest one, and where
  every field is listed. `err` is ml_collections' KeyError, or the AttributeError around it."""
  key, text = missing_key(err)
  args = sys.argv[1:] if args is None else args
  dotted, prefix = key, ""
  for arg in args:
    parts = arg[2:].partition("=")[0].split(".") if arg.startswith("--config.") else []
    if key in parts[1:]:
      i = parts.index(key, 1)
      dotted, prefix = ".".join(parts[1:i + 1]), "".join(p + "." for p in parts[1:i])
      break
  near = re.search(r'Did you mean "([^"]+)"', text)
  hint = f" (did you mean {prefix}{near.group(1)}?)" if near else ""
  listing = " ".join(["./launch.sh config"] + [a for a in args if a.startswith("--config=")])
  return f"the config has no field {dotted}{hint}; `{listing}` lists every field"


def through_a_value(args):
  """One line for `--config.A.B=v` where config.A is a value, not a group of fields, or None.
  ml_collections says only "string indices must be integers" or "Attribute <class 'int'>.x
  does not exist", naming neither the flag nor the fix."""
  import runpy
  from ml_collections import ConfigDict
  given = [a[len("--config="):] for a in args if a.startswith("--config=")]
  path, _, arg = (given[-1] if given else DEFAULT_CONFIG).partition(":")
  try:
    config = runpy.run_path(path)["get_config"](*([arg] if arg else []))
  except Exception:  # an unloadable config file has its own error; keep the original one
    return None
  for flag in (a for a in args if a.startswith("--config.")):
    parts, node = flag[len("--config."):].partition("=")[0].split("."), config
    for i, part in enumerate(parts[:-1]):
      if not isinstance(node, ConfigDict) or part not in node:
        break
      node = node[part]
      if not isinstance(node, ConfigDict):
        field = ".".join(parts[:i + 1])
        return (f"config.{field} is a value ({node!r}), not a group of fields, so "
                f"--config.{'.'.join(parts)} names nothing; set --config.{field}=VALUE")
  return None


def _underscored(arg):
  """--time-limit=20 -> --time_limit=20: absl names use underscores, people
  often type hyphens. Values and config fields (--config.a.b) are left alone."""
  if not arg.startswith("--") or arg == "--":
    return arg
  name, eq, value = arg[2:].partition("=")
  return arg if "." in name else "--" + name.replace("-", "_") + eq + value


def _parse(argv, module_name):
  argv = argv[:1] + [_underscored(a) for a in argv[1:]]
  try:
    return flags.FLAGS(argv)
  except flags.UnrecognizedFlagError as err:
    own = [f"--{f.name}" for f in flags.FLAGS.get_flags_for_module(module_name)]
    fail(f"unknown flag --{err.flagname}{closest(f'--{err.flagname}', own)}; "
         f"`./launch.sh {argv[0].split()[-1]} --help` lists this command's flags")
  except flags.IllegalFlagValueError as err:
    fail(f"bad flag value: {_explain_flag_error(err)}")
  except KeyError as err:
    fail(through_a_value(argv[1:]) or unknown_field(err, argv[1:]))
  except AttributeError as err:  # ml_collections wraps an unknown field's KeyError in one
    fail(unknown_field(err, argv[1:]) if err.args and isinstance(err.args[0], KeyError)
         else _explain_flag_error(err))
  except TypeError as err:
    fail(through_a_value(argv[1:]) or _explain_flag_error(err))
  except (flags.Error, ValueError, OSError) as err:
    fail(_explain_flag_error(err))


def help_text(module, command):
  """What `-h`/`--help` print: the command's docstring and its own flags."""
  own = flags.FLAGS.module_help(module.__name__).strip().splitlines()[1:]  # drop the module name
  lines = [(module.__doc__ or "").strip(), "", "flags:", *own]
  if any(f.name == "config" for f in flags.FLAGS.get_flags_for_module(module.__name__)):
    lines.append("  --config.FIELD=value: set any field of the config; "
                 "`./launch.sh config` lists them all")
  lines += ["", f"`./launch.sh {command} --helpfull` adds absl's own flags."]
  return "\n".join(lines).replace(ROOT + os.sep, "")


def _help_requested(argv):
  """Exit 0 with the help when a help flag comes before any `--` (absl itself exits 1)."""
  words = argv[1:argv.index("--")] if "--" in argv else argv[1:]
  if "--helpfull" in words:
    app.usage(shorthelp=False, writeto_stdout=True, exitcode=0)
  return any(word in HELP_FLAGS for word in words)


def _multi_process():
  jax = sys.modules.get("jax")  # never imported here: only a command that started JAX asks
  return jax is not None and jax.process_count() > 1


def run(main, argv=None):
  """`app.run(main)`, with UserError and flag errors reported as one line and exit 2."""
  argv = sys.argv if argv is None else argv
  module = sys.modules[main.__module__]
  if _help_requested(argv):
    try:
      print(help_text(module, argv[0].split()[-1]), flush=True)
    except BrokenPipeError:  # `--help | head`: the reader has what it wanted
      os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(0)

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
      print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
      if _multi_process():  # Python's exit would wait in jax.distributed's shutdown barrier
        os._exit(130)       # for peers that were interrupted too: minutes, then an abort
      sys.exit(130)

  app.run(checked_main, argv=argv,
          flags_parser=lambda args: _parse(args, module.__name__))


def load_config(config_flag, flag_name="config"):
  """The ConfigDict of a `config_flags` flag, loaded now (ml_collections loads lazily).

  A missing or broken config file and bad `--config.FIELD` overrides become UserErrors.
  """
  from ml_collections import config_flags  # only commands with a --config pay for its import
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
    raise UserError(unknown_field(err)) from None
  except (AttributeError, ValueError, TypeError) as err:
    raise UserError(f"bad --{flag_name} override: {' '.join(str(err).split())}; check the field "
                    "name and type in the config file") from None


def checked_config(config_flag):
  """The flag's config, loaded and checked (config.check): mistakes as one line, before any
  child process starts."""
  config = load_config(config_flag)
  from cnnlab import config as config_lib  # imports JAX
  config_lib.check(config)
  return config


def write_record(out, result, table):
  """A bench record of --config's run (bench.record.write): its path, overrides and machine."""
  from ml_collections import config_flags
  from cnnlab.bench import record
  record.write(out, result, config_flags.get_config_filename(flags.FLAGS["config"]), table,
               record.config_overrides(sys.argv[1:]))


def setup_figures():
  """Figures go to files: matplotlib's Agg backend, process-wide, for the commands that draw
  (a notebook importing cnnlab keeps its own backend)."""
  import matplotlib
  matplotlib.use("Agg")


def setup_jax():
  """Process-wide JAX settings for shell commands (cnnlab.compilation.use_persistent_cache)."""
  from cnnlab import compilation
  compilation.use_persistent_cache()
  quiet_background_tracebacks()


def require(condition, message):
  """Raise a UserError with `message` unless `condition` holds."""
  if not condition:
    raise UserError(message)
