"""The one shell entry: `python -m experiments.main COMMAND [--flags]` (launch.sh calls it).

Each command lives in `cnnlab/commands/<name>.py` and defines its own absl flags; only the
chosen command's module is imported, so flags never clash and start-up stays short.
"""

import importlib
import sys

COMMANDS = {
    "train": "train the model of --config on its dataset (resumes from --workdir)",
    "summary": "print a model's layer table (output shapes, parameters, FLOPs)",
    "conv": "teaching calculator: convolve or pool a small matrix and show the size arithmetic",
    "edges": "apply the course's edge masks to a real Fashion-MNIST image",
    "viz": "draw figures from a trained run's checkpoints",
    "predict": "classify an image with a trained run",
    "sweep": "run a grid of configs and tabulate the results",
    "bench": "measure training/eval throughput (optionally against PyTorch)",
}


def usage():
  lines = ["usage: python -m experiments.main COMMAND [--flag=value ...]", "", "commands:"]
  lines += [f"  {name:<8} {text}" for name, text in COMMANDS.items()]
  lines += ["", "`COMMAND --help` lists a command's flags."]
  return "\n".join(lines)


def main(argv):
  if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
    print(usage())
    return 0
  command = argv[1]
  if command not in COMMANDS:
    from cnnlab.errors import closest
    print(f"cnnlab: error: unknown command {command!r}{closest(command, COMMANDS)}; "
          f"choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
    return 2
  try:
    module = importlib.import_module(f"cnnlab.commands.{command}")
  except ModuleNotFoundError as err:
    if err.name != f"cnnlab.commands.{command}":
      raise
    print(f"cnnlab: error: command {command!r} is not available in this version",
          file=sys.stderr)
    return 2
  from cnnlab import cli
  # absl's --help prints the __main__ module's docstring: show the command's, not this one's.
  sys.modules["__main__"].__doc__ = module.__doc__
  from absl import flags
  flags.adopt_module_key_flags(module)  # --help then lists the command's own flags
  cli.run(module.main, argv=[f"cnnlab {command}"] + argv[2:])
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
