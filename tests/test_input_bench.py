"""The input benchmarks (cnnlab/bench/input_throughput.py) on tiny runs: the records hold what
the issue asks for. The speeds themselves are measured by `./launch.sh bench --input_modes=...`
and `--decode=...` on a quiet machine (docs/input.md), not here."""

import json
import os

import pytest
from PIL import Image

from cnnlab.bench import input_throughput as bench
from conftest import needs_data, one_line_error, run_cli, smoke_config
from shapes import make_folder


@needs_data
@pytest.mark.slow  # two trainers compiled: ~10 s
def test_input_modes_bench_alternates_both_modes_on_the_same_config():
  """256 Fashion-MNIST images: 8 steps of 32 an epoch; 3 warm-up steps and 2 rounds of 3 run
  past the end of the first epoch, so the streamed epoch restarts within a round."""
  config = smoke_config(train_size=256, validation_size=64)
  result = bench.modes(config, [32], repeats=2, images_per_round=64, log=lambda line: None)
  assert (result["bench"], result["dataset"], result["train_examples"]) == (
      "input_modes", "fashion_mnist", 256)
  assert (result["modes"], result["repeats"]) == (["resident", "stream"], 2)
  (rec,) = result["results"]
  assert (rec["batch_size"], rec["steps_per_round"]) == (32, 3)
  assert (rec["resident_feed"], rec["stream_feed"], rec["stream_workers"]) == (
      "Resident", "Stream", 0)  # arrays: read by threads, no worker process
  for key in ("resident_images_per_s", "stream_images_per_s", "stream_over_resident"):
    stats = rec[key]
    assert len(stats["all"]) == 2 and 0 < stats["min"] <= stats["median"] <= stats["max"]
  assert result["machine"]["cores"] == os.cpu_count()


def test_generated_jpegs_are_class_folders_of_photo_sized_pictures(tmp_path):
  bench.generate_jpegs(str(tmp_path), images=6, classes=3, sides=(40, 60), quality=90)
  assert sorted(os.listdir(tmp_path)) == ["c00", "c01", "c02"]
  assert sorted(os.listdir(tmp_path / "c01")) == ["0001.jpg", "0004.jpg"]
  for name in ("c00/0000.jpg", "c02/0005.jpg"):
    with Image.open(tmp_path / name) as im:
      assert im.format == "JPEG" and im.mode == "RGB"
      assert all(40 <= side <= 60 for side in im.size)


def test_an_unknown_input_mode_is_one_line_and_writes_nothing(tmp_path):
  proc = run_cli("bench", "--input_modes=resident,fast", f"--out={tmp_path}/x.json")
  one_line_error(proc, "--input_modes=resident,fast must name distinct modes of resident, "
                 "stream")
  assert not os.path.exists(tmp_path / "x.json")


@pytest.mark.slow  # a CLI start and a Grain worker process: ~15 s
def test_decode_bench_of_a_folder_records_both_rates(tmp_path):
  """A drawn folder of 30 pictures (24 train, 6 drawn for test): read in one process and
  by one Grain worker process, through the transform of --config.image_size."""
  folder = make_folder(tmp_path / "shapes", per_class=3)
  out = tmp_path / "decode.json"
  proc = run_cli("bench", f"--decode={folder}", "--repeats=1", "--config.image_size=16",
                 "--config.input_workers=1", f"--out={out}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads(out.read_text())
  assert (result["bench"], result["folder"], result["generated"]) == ("decode", folder, None)
  assert (result["images"], result["image_size"], result["shape"]) == (24, 16, [16, 16, 3])
  assert (result["workers"], result["batch_size"], result["repeats"]) == (1, 6, 1)
  for key in ("one_process_images_per_s", "workers_images_per_s", "per_worker_images_per_s"):
    assert len(result[key]["all"]) == 1 and result[key]["median"] > 0
  assert result["per_worker_images_per_s"] == result["workers_images_per_s"]  # 1 worker
  assert result["config_overrides"] == ["--config.image_size=16", "--config.input_workers=1"]
  assert f"wrote {out}" in proc.stdout
