"""`train` in stream mode on a dataset that decodes: a folder drawn with PIL (fake data, and
said so: tests/shapes.py) trains from a source, never decoding the whole training split, and
gives the numbers of resident mode bit for bit."""

import numpy as np
import pytest

from cnnlab import data
from cnnlab.train import train_and_evaluate
from conftest import smoke_config
from shapes import make_folder


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory):
  return make_folder(tmp_path_factory.mktemp("shapes"), per_class=12)


def config_for(root, mode, **overrides):
  """The smoke recipe on the folder: 96 training images (76 + 20 validation), 2 epochs."""
  fields = dict(dataset=f"folder:{root}", image_size=16, train_size=0, validation_size=0,
                test_size=0, num_epochs=2, batch_size=16, eval_batch_size=24,
                early_stopping_patience=0, input=mode)
  return smoke_config(**{**fields, **overrides})


def run(root, workdir, mode, **overrides):
  results = train_and_evaluate(config_for(root, mode, **overrides), str(workdir),
                               log=lambda *a: None)
  with open(f"{workdir}/metrics.jsonl") as f:
    return f.read(), {k: v for k, v in results.items() if k != "train_wall_time_s"}


def test_stream_mode_decides_before_decoding_and_picks_the_resident_indices(shapes_dir):
  config = config_for(shapes_dir, "stream")
  streamed = data.train_validation_inputs(config)
  resident = data.load_train_validation(config)
  images, labels = resident["train"]
  assert len(streamed["train"]) == len(images) == 76
  for i in (0, 41, 75):
    image, label = streamed["train"][i]
    np.testing.assert_array_equal(image, images[i])
    assert label == labels[i]
  for got, want in zip(streamed["validation"], resident["validation"]):
    np.testing.assert_array_equal(got, want)
  np.testing.assert_array_equal(data.first_images(streamed["train"], 5000), images)
  np.testing.assert_array_equal(data.first_images(streamed["train"], 3), images[:3])


def counting_decodes(monkeypatch):
  """The paths transform.read decodes in this process from now on (Grain's worker processes,
  which decode the streamed epochs, count apart)."""
  from cnnlab.input import transform
  read, decoded = transform.read, []

  def counted(path, shape):
    decoded.append(path)
    return read(path, shape)
  monkeypatch.setattr(transform, "read", counted)
  return decoded


def test_a_folder_trains_in_stream_mode_as_in_resident_mode(shapes_dir, tmp_path, monkeypatch):
  resident = run(shapes_dir, tmp_path / "resident", "resident")

  load_split = data.load_split

  def test_split_only(config, split, *args):
    assert split == "test", "stream mode decoded the whole training split"
    return load_split(config, split, *args)
  monkeypatch.setattr(data, "load_split", test_split_only)
  decoded = counting_decodes(monkeypatch)
  streamed = run(shapes_dir, tmp_path / "stream", "stream", input_workers=1)
  assert streamed[0] == resident[0]
  assert streamed[1] == resident[1]
  assert len(resident[0].splitlines()) == 2
  # Here: the validation part (20), the first training image (the mode's choice: its size),
  # the test split (24); textbook_cnn starts from random weights: no training image builds it.
  assert len(decoded) == 20 + 1 + 24


def test_only_a_model_set_from_data_decodes_training_images_to_start(shapes_dir, monkeypatch):
  """state.build_fresh reads the first init_images(config) training images: none for
  textbook_cnn (or speedrun_cnn without whitening), up to 5,000 (here all 76) for speedrun_cnn's
  whitening conv1, whose filters are then those of exactly these images."""
  from cnnlab.models import whitening
  from cnnlab.train import state as state_lib
  speedrun = dict(name="speedrun_cnn", widths=(8, 8), hidden=16, whiten_eps=1e-2)
  for model, count in ((None, 0), ({**speedrun, "whiten_eps": 0.0}, 0), (speedrun, 76)):
    config = config_for(shapes_dir, "stream", **({"model": model} if model else {}))
    assert state_lib.init_images(config) == (count and whitening.MAX_IMAGES)
    train = data.train_validation_inputs(config)["train"]
    decoded = counting_decodes(monkeypatch)
    _, state = state_lib.build_fresh(config, 4, train)
    assert len(decoded) == count
  images = data.load_train_validation(config)["train"][0]
  kernel, _ = whitening.whitening_filters(images, 8, eps=1e-2)
  np.testing.assert_array_equal(state.params["conv1"]["kernel"], kernel)


def test_with_the_cache_a_second_run_decodes_no_training_image(shapes_dir, tmp_path,
                                                                 monkeypatch):
  decoded = counting_decodes(monkeypatch)
  where = str(tmp_path / "cache")
  first = run(shapes_dir, tmp_path / "first", "stream", input_cache=where)
  assert len(decoded) == 96 + 1 + 24  # the training split once (+1 for its shape), the test
  del decoded[:]
  second = run(shapes_dir, tmp_path / "second", "stream", input_cache=where)
  assert len(decoded) == 1 + 24  # the first training image (its shape), the test split
  assert first == second == run(shapes_dir, tmp_path / "resident", "resident")


def test_a_part_of_a_decoded_split_is_read_by_threads_and_a_folder_by_workers(tmp_path):
  from cnnlab.input import arrays, stream
  from cnnlab.input.folder import FolderSource
  cached = arrays.ArraySource(np.zeros((4, 2, 2, 1), np.uint8), np.arange(4))
  assert stream.workers_for(arrays.Part(cached, np.arange(2)), 0) == 0
  folder = FolderSource.__new__(FolderSource)
  assert stream.workers_for(arrays.Part(folder, np.arange(2)), 0) >= 1
  assert stream.workers_for(arrays.Part(cached, np.arange(2)), 3) == 3
