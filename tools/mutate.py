"""Mutation testing of one core module against its fast, in-process quick-tier tests (mutmut 3).

  .venv/bin/pip install -e '.[mutation]'           # once
  .venv/bin/python tools/mutate.py shapes          # the working tree
  .venv/bin/python tools/mutate.py shapes --ref 46a6241   # a commit (before/after)
  .venv/bin/python tools/mutate.py shapes --survivors-of 46a6241  # after: rerun only its survivors

Each run works in its own scratch copy (/tmp/cnnlab-mutate/MODULE-REF), so modules can run side
by side and the worktree never gets a mutants/ folder. It prints the kill rate and every
survivor (`mutmut show NAME` in the scratch directory shows its diff). Not in CI: minutes to
hours per module. The tests per module are listed in TESTS: only in-process tests can kill a
mutant (a subprocess imports the unmutated package and records no coverage), and mutmut runs
for each mutant only the tests that called the mutated function. Results: docs/testing.md.
"""

import argparse
import collections
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POOL_NUMBERS = [f"tests/test_numbers.py::{name}" for name in (
    "test_pooling_with_ties_and_padding_equals_numbers_by_hand",
    "test_tied_maxima_send_the_gradient_to_the_first_in_row_major_order")]
# module -> the quick-tier test files that exercise it in-process
TESTS = {
    "ops": ["tests/test_ops_api.py", "tests/test_ops.py", "tests/test_shapes.py",
            "tests/test_properties.py"],
    "pooling": ["tests/test_ops.py", "tests/test_properties.py", *POOL_NUMBERS],
    "shapes": ["tests/test_shapes.py", "tests/test_ops.py", "tests/test_properties.py"],
    "checkpoint": ["tests/test_checkpoint_values.py", "tests/test_numbers.py",
                   "tests/test_reliability.py"],
    "config": ["tests/test_config_values.py", "tests/test_numbers.py", "tests/test_resume_loop.py"],
    "rundir": ["tests/test_rundir.py", "tests/test_numbers.py", "tests/test_runs.py"],
    "augment": ["tests/test_augment_values.py", "tests/test_zoo.py"],
    "data": ["tests/test_data_values.py", "tests/test_data.py", "tests/test_numbers.py"],
    "train/step": ["tests/test_step_values.py", "tests/test_numbers.py", "tests/test_train.py"],
    "train/evaluate": ["tests/test_evaluate_values.py", "tests/test_train.py"],
    "train/state": ["tests/test_state_values.py", "tests/test_numbers.py", "tests/test_train.py"],
    "train/epochs": ["tests/test_epoch_loop_values.py", "tests/test_epochs_values.py",
                     "tests/test_train.py"],
    "train/epoch_log": ["tests/test_epochs_values.py", "tests/test_train.py"],
    "parallel": ["tests/test_parallel.py", "tests/test_numbers.py"],
    "models/layers": ["tests/test_models.py", "tests/test_properties.py", "tests/test_shapes.py",
                      "tests/test_fast_layers.py", "tests/test_layers.py"],
}


def copy_sources(ref, dest):
  """cnnlab/, tests/, experiments/ and pyproject.toml of `ref` (None: the working tree)."""
  parts = ["cnnlab", "tests", "experiments", "pyproject.toml"]
  if ref:
    archive = subprocess.run(["git", "-C", REPO, "archive", ref, *parts], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
    return
  for part in parts:
    src = os.path.join(REPO, part)
    copy = shutil.copytree if os.path.isdir(src) else shutil.copy2
    copy(src, os.path.join(dest, part), **({"ignore": shutil.ignore_patterns("__pycache__")}
                                           if os.path.isdir(src) else {}))


def configure(dest, module, tests):
  """Append a [tool.mutmut] section for `module` to the copy's pyproject.toml."""
  present = [t for t in tests if os.path.exists(os.path.join(dest, t.split("::")[0]))]
  quoted = lambda items: "[" + ", ".join(f'"{i}"' for i in items) + "]"
  with open(os.path.join(dest, "pyproject.toml"), "a") as f:
    f.write(f"""
[tool.mutmut]
source_paths = ["cnnlab"]
only_mutate = ["cnnlab/{module}.py"]
also_copy = ["experiments/"]
pytest_add_cli_args = {quoted(["-p", "no:cacheprovider", "-m", "not slow", "-q"])}
pytest_add_cli_args_test_selection = {quoted(present)}
process_isolation = "forkserver"
forkserver_warmup = "collect"
timeout_constant = 60.0
""")
  return present


def results(dest):
  """{mutant name: status} of the last run in `dest` ("not checked" where none ran)."""
  out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "mutmut"), "results",
                        "--all", "true"], cwd=dest, capture_output=True, text=True).stdout
  return dict(line.strip().rsplit(": ", 1) for line in out.splitlines() if ": " in line)


def summarize(status):
  """The counts, the kill rate of the mutants that ran (an interrupted run leaves some "not
  checked"), and every mutant left alive."""
  counts = collections.Counter(status.values())
  total = sum(counts.values()) - counts["not checked"]
  print(f"{len(status)} mutants: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
  if total:
    print(f"kill rate {counts['killed'] / total:.1%} ({counts['killed']}/{total} that ran)")
  for name, s in sorted(status.items()):
    if s not in ("killed", "not checked"):
      print(f"  {s}: {name}")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("module", choices=sorted(TESTS))
  parser.add_argument("--ref", help="a git commit to test instead of the working tree")
  parser.add_argument("--jobs", type=int, default=1, help="mutants run at once (default 1)")
  parser.add_argument("--summary", action="store_true", help="only print the last results")
  parser.add_argument("--tests", nargs="+", metavar="TEST",
                      help="these test files or node ids instead of TESTS[module] (a subset: "
                           "the kill rate is then a lower bound for the quick tier)")
  parser.add_argument("--survivors-of", metavar="REF",
                      help="run only the mutants that REF's run (done before) left alive; the "
                           "rest keep REF's verdict (tests were only added since)")
  args = parser.parse_args()
  scratch = lambda ref: os.path.join("/tmp/cnnlab-mutate",
                                     f"{args.module.replace('/', '.')}-{ref or 'tree'}")
  dest = scratch(args.ref)
  before = results(scratch(args.survivors_of)) if args.survivors_of else {}
  alive = sorted(name for name, s in before.items() if s not in ("killed", "not checked"))
  if args.survivors_of and not alive:
    sys.exit(f"no survivors in {scratch(args.survivors_of)} (or it was never run)")
  if not args.summary:
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    copy_sources(args.ref, dest)
    tests = configure(dest, args.module, args.tests or TESTS[args.module])
    print(f"mutating cnnlab/{args.module}.py in {dest} against {' '.join(tests)}", flush=True)
    env = dict(os.environ, CNNLAB_JAX_CACHE=os.path.join(dest, ".jax_cache"))
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "mutmut"), "run",
                    "--max-children", str(args.jobs), *alive], cwd=dest, env=env)
  status = results(dest)
  if before:  # REF's verdicts, with those of the mutants rerun here
    status = dict(before, **{name: status[name] for name in alive if name in status})
  summarize(status)


if __name__ == "__main__":
  main()
