"""The one shell entry: `python -m cnnlab.cli COMMAND [--flags]` (launch.sh calls it).

A command is one file here, cnnlab/cli/<command>.py: a docstring whose first line says what
it does, its own absl flags, and main(argv). It is found by its file name, so adding a
command is adding that file; only the chosen command is imported, so flags never clash and
start-up stays short.
"""

import ast
import importlib
import os
import pkgutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def commands():
  """{command name: one-line description}, read from the files without importing them."""
  out = {}
  for module in pkgutil.iter_modules([HERE]):
    if module.name.startswith("_") or module.name == "common":
      continue
    with open(os.path.join(HERE, f"{module.name}.py")) as f:
      doc = ast.get_docstring(ast.parse(f.read())) or ""
    out[module.name] = doc.splitlines()[0].split(": ", 1)[-1] if doc else ""
  return out


def usage(table):
  lines = ["usage: ./launch.sh COMMAND [--flag=value ...]", "", "commands:"]
  lines += [f"  {name:<9} {text.rstrip('.')}" for name, text in table.items()]
  lines += ["", "`./launch.sh COMMAND --help` lists a command's flags."]
  return "\n".join(lines)


def main(argv):
  table = commands()
  if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
    print(usage(table))
    return 0
  command = argv[1]
  if command not in table:
    from cnnlab.errors import closest
    print(f"cnnlab: error: unknown command {command!r}{closest(command, table)}; "
          f"choose one of: {', '.join(table)}", file=sys.stderr)
    return 2
  from cnnlab.cli import common
  try:
    module = importlib.import_module(f"cnnlab.cli.{command}")
  except (KeyError, AttributeError, TypeError) as err:  # --config.FIELD against the default config
    through = common.through_a_value(argv[2:])
    if through:
      common.fail(through)
    typed = {part for a in argv[2:] if a.startswith("--config.")
             for part in a.partition("=")[0].split(".")[1:]}
    if isinstance(err, TypeError) or common.missing_key(err)[0] not in typed:
      raise  # not a field the user typed: a bug, keep its traceback
    common.fail(common.unknown_field(err, argv[2:]))
  from absl import flags
  # absl's --help prints the __main__ module's docstring: show the command's, not this one's.
  sys.modules["__main__"].__doc__ = module.__doc__
  flags.adopt_module_key_flags(module)  # --help then lists the command's own flags
  common.run(module.main, argv=[f"cnnlab {command}"] + argv[2:])
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
