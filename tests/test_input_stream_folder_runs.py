"""The streamed mode from a folder in several processes at once: two processes of one run, and
two sweep points side by side, sharing one decoded cache. Apart from test_input_stream_runs.py
(whose helpers they use) so that pytest-xdist's --dist=loadfile gives them their own worker.
"""

import json
import os

import numpy as np
import pytest

from conftest import needs_data
from shapes import make_folder
from test_input_stream_runs import EPOCHS, FOLDER, STREAM, _reads, _start
from test_multiprocess import finish, metrics, results

pytestmark = [needs_data, pytest.mark.slow]


def test_two_processes_stream_their_own_shares_of_a_folder_and_equal_one_process(tmp_path):
  """2 processes x 2 CPU devices vs 1 process x 4, both streamed from a folder through the
  decoded cache (2 epochs of 4 steps of 16 from 64 images): the two processes want the cache
  at once, one decodes it and the other waits for it; each then reads its 8 rows of every
  batch, 32 examples an epoch, together each example once an epoch (the last partial batch
  is dropped); the numbers are the one-process run's, which finds the cache written."""
  folder, where = make_folder(tmp_path / "shapes", per_class=10), tmp_path / "cache"
  flags = [*FOLDER, f"--config.dataset=folder:{folder}", f"--config.input_cache={where}"]
  for name, processes, devices in (("two", 2, 2), ("one", 1, 4)):
    env = dict(READS=str(tmp_path / f"{name}-reads"))
    outs = finish(_start(str(tmp_path / name), processes, devices, env, flags))
    assert [rc for rc, _, _ in outs] == [0] * processes, outs
  two = [_reads(tmp_path / "two-reads", p) for p in (0, 1)]
  assert [len(r) for r in two] == [EPOCHS * 4 * 8] * 2
  assert sorted(two[0] + two[1]) == sorted(list(range(64)) * EPOCHS)
  assert sorted(_reads(tmp_path / "one-reads", 0)) == sorted(list(range(64)) * EPOCHS)
  (cached,) = os.listdir(where)  # one copy, written once: no other process's files left
  assert sorted(os.listdir(where / cached)) == [".lock", "cache.json", "images.npy",
                                                 "labels.npy"]
  rows = lambda d: [json.loads(l) for l in metrics(d).splitlines()]
  r2, r1 = rows(tmp_path / "two"), rows(tmp_path / "one")
  assert [r["step"] for r in r2] == [r["step"] for r in r1] == [4, 8]
  for key in ("train_loss", "val_loss"):  # gloo's all-reduce sums in another order (as in
    np.testing.assert_allclose([r[key] for r in r2], [r[key] for r in r1], rtol=1e-5)
  for key in ("train_accuracy", "val_accuracy"):  # test_multiprocess): accuracies exact
    assert [r[key] for r in r2] == [r[key] for r in r1]
  assert results(tmp_path / "two")["test_accuracy"] == results(tmp_path / "one")["test_accuracy"]


def test_a_sweep_on_a_folder_trains_its_points_side_by_side_from_one_cache(tmp_path):
  """`sweep` over seeds of a folder dataset, two points at once, streamed through one decoded
  cache: both finish, the cache is written once, each point trained its own seed."""
  from test_sweep import run_sweep
  folder, where = make_folder(tmp_path / "shapes", per_class=10), tmp_path / "cache"
  workdir = tmp_path / "sweep"
  result = run_sweep(*FOLDER, f"--config.dataset=folder:{folder}", f"--config.input_cache={where}",
                     STREAM, "--config.num_epochs=1", "--sweep=config.seed=0,1",
                     f"--workdir={workdir}", "--parallel=2",
                     cache=os.environ["CNNLAB_JAX_CACHE"])
  assert result.returncode == 0, result.stderr[-3000:]
  rows = [r.split(",")[:4] for r in (workdir / "results.csv").read_text().splitlines()[1:]]
  assert rows == [["seed=0", "finished", "textbook_cnn", "0"],
                  ["seed=1", "finished", "textbook_cnn", "1"]]
  for seed in (0, 1):
    config = json.loads((workdir / f"seed={seed}" / "config.json").read_text())
    assert (config["dataset"], config["seed"]) == (f"folder:{folder}", seed)
    assert json.loads((workdir / f"seed={seed}" / "results.json").read_text())["epochs"] == 1
  (cached,) = os.listdir(where)
  assert sorted(os.listdir(where / cached)) == [".lock", "cache.json", "images.npy",
                                                 "labels.npy"]
