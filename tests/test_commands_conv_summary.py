"""Shell tests of `summary`, `conv` and `edges`: exit codes, output, one-line errors.

Each process pays ~2 s of JAX import, so all of them start at once in one fixture and the
tests read their results.
"""

import os
import subprocess
import sys

import pytest

from conftest import DATA_DIR, needs_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE3 = "--image=[[1,2,3],[4,5,6],[7,8,9]]"

CASES = {
    "summary": ["summary", "--model=textbook_cnn"],
    "conv_same": ["conv", IMAGE3, "--kernel=[[1,1],[1,1]]", "--padding=same"],
    "pool_max": ["conv", "--image=[[1,1,2,4],[5,6,7,8],[3,2,1,0],[1,2,3,4]]", "--pool=max",
                 "--window=2"],
    "bad_ragged": ["conv", "--image=[[1,2],[3]]", "--kernel=[[1]]"],
    "bad_kernel": ["conv", "--image=[[1,2],[3,4]]", "--kernel=[[1,1,1],[1,1,1],[1,1,1]]"],
    "bad_stride": ["conv", IMAGE3, "--kernel=[[1]]", "--stride=0"],
    "bad_model": ["summary", "--model=textbook_cn"],
}


def start(args):
  env = dict(os.environ, PYTHONPATH=ROOT)
  return subprocess.Popen([sys.executable, "-m", "cnnlab.cli", *args], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def results():
  procs = {name: start(args) for name, args in CASES.items()}
  return {name: (p.wait(timeout=120), p.stdout.read(), p.stderr.read())
          for name, p in procs.items()}


def test_summary_prints_the_keras_table(results):
  code, out, err = results["summary"]
  assert code == 0, err
  assert "Total params: 333,526" in out
  for shape, params in [("(None, 28, 28, 32)", "320"), ("(None, 14, 14, 64)", "18,496"),
                        ("(None, 3136)", "0"), ("(None, 100)", "313,700"),
                        ("(None, 10)", "1,010")]:
    assert any(shape in line and f" {params} " in line for line in out.splitlines()), shape


def test_conv_prints_result_and_size_arithmetic(results):
  code, out, err = results["conv_same"]
  assert code == 0, err
  assert "12 16  9\n  24 28 15\n  15 17  9" in out
  assert "ceil(3/1) = 3" in out and "0 before, 1 after" in out


def test_conv_pools(results):
  code, out, err = results["pool_max"]
  assert code == 0, err
  assert "  6 8\n  3 4" in out and "(4 - 2 + 2*0)/2 + 1 = 2" in out


@pytest.mark.parametrize("case, words", [
    ("bad_ragged", "ragged"), ("bad_kernel", "larger than the padded input 2x2"),
    ("bad_stride", "stride must be at least 1"), ("bad_model", "did you mean 'textbook_cnn'"),
])
def test_bad_input_is_one_line_and_exit_2(results, case, words):
  code, out, err = results[case]
  assert code == 2 and out == ""  # nothing half-printed before the error
  lines = err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("cnnlab: error:"), err
  assert words in lines[0] and "Traceback" not in err


@needs_data
def test_edges_saves_a_png(tmp_path):
  out = tmp_path / "figs" / "edges.png"
  proc = start(["edges", "--index=1", f"--data_dir={DATA_DIR}", f"--out={out}"])
  code, stdout, stderr = proc.wait(timeout=120), proc.stdout.read(), proc.stderr.read()
  assert code == 0, stderr
  assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert "saved" in stdout
