"""The train command from the shell: bad input -> one line on stderr, exit 2, no traceback."""


import pytest

from conftest import REPO, run_cli


def _assert_one_line_error(proc, *needles):
  assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert len(lines) == 1, proc.stderr
  assert lines[0].startswith("cnnlab: error:") and "Traceback" not in proc.stderr
  for needle in needles:
    assert needle in lines[0], lines[0]


SMOKE = f"--config={REPO}/experiments/smoke.py"

CASES = {
    "unknown model": ([SMOKE, "--config.model.name=textbok_cnn"], ["textbook_cnn"]),
    "missing config file": (["--config=experiments/nope.py"], ["config"]),
    "negative learning rate": ([SMOKE, "--config.optimizer.learning_rate=-0.1"],
                               ["learning_rate", "positive"]),
    "batch size 0": ([SMOKE, "--config.batch_size=0"], ["batch_size"]),
    "unknown config key": ([SMOKE, "--config.batch_sise=3"], ["batch_sise"]),
    "wrong type": ([SMOKE, "--config.batch_size=abc"], ["batch_size"]),
    "unreadable data dir": ([SMOKE, "--data_dir=/nonexistent/fmnist"], ["/nonexistent/fmnist"]),
    "unknown flag": ([SMOKE, "--epochs=3"], ["--epochs"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_train_input(name, tmp_path):
  args, needles = CASES[name]
  workdir = tmp_path / "w"
  proc = run_cli("train", *args, f"--workdir={workdir}")
  _assert_one_line_error(proc, *needles)
  assert not (workdir / "checkpoints").exists()  # nothing was started


@pytest.mark.slow
def test_unwritable_workdir(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("not a directory")
  proc = run_cli("train", SMOKE, f"--workdir={blocker}/run")
  _assert_one_line_error(proc, "workdir")
  assert blocker.read_text() == "not a directory"


def test_unknown_command():
  proc = run_cli("trian")
  _assert_one_line_error(proc, "did you mean 'train'")
