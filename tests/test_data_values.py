"""data.py in-process (seconds, no training): what a config's dataset is, which images each part
of the split gets, the sizes a quick run takes, the mode's shape of the training part, the
decode cache's place and fingerprint. Written for mutation testing (tools/mutate.py data).

Fake data, said so: tiny IDX files whose image i is filled with the value i (so every image
says which one it is), and a folder of 4x4 grey PNGs (2 classes) whose pixels say the same.
"""

import hashlib
import json
import os

import ml_collections
import numpy as np
import pytest
from PIL import Image

from cnnlab import data
from cnnlab.errors import UserError
from cnnlab.input import arrays, cache, splits
from test_data import _write_idx

N_TRAIN, N_TEST = 20, 10


def _idx(path, magic, array):
  _write_idx(path, magic, array.shape, array.tobytes())


@pytest.fixture
def idx_dir(tmp_path):
  """Fake Fashion-MNIST IDX files: image i is all i, label i % 10."""
  for prefix, n in (("train", N_TRAIN), ("t10k", N_TEST)):
    ids = np.arange(n, dtype=np.uint8)
    _idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", 0x0803,
         np.broadcast_to(ids[:, None, None], (n, 28, 28)).copy())
    _idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", 0x0801, ids % 10)
  return str(tmp_path)


@pytest.fixture
def folder(tmp_path):
  """A fake folder dataset: classes a (files 0-5) and b (6-9), 4x4 grey PNGs of value 10 * i."""
  root = tmp_path / "pics"
  for i in range(10):
    cls = root / ("a" if i < 6 else "b")
    cls.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 4), 10 * i, np.uint8)).save(cls / f"{i}.png")
  return str(root)


def config(dataset="fashion_mnist", data_dir="", **fields):
  c = dict(dataset=dataset, data_dir=data_dir, image_size=0, test_fraction=0.2, split_seed=42,
           skip_bad_images=False, validation_fraction=0.2, train_size=0, validation_size=0,
           test_size=0, input="auto", input_budget_mib=0, input_cache="")
  c.update(fields)
  return ml_collections.ConfigDict(c)


def ids(images):
  return images[:, 0, 0, 0].tolist()


def test_a_registered_dataset_is_what_its_files_say(idx_dir):
  c = config(data_dir=idx_dir)
  found = data.info(c)
  assert found.shape == data.image_shape(c) == (28, 28, 1)
  assert found.sizes == {"train": N_TRAIN, "test": N_TEST}
  assert data.num_classes(c) == 10 and data.is_registered(c)
  assert data.class_names(c)[9] == "Ankle boot" and data.class_names(c, "ko")[9] == "앵클 부츠"
  assert data.image_shape(config(data_dir=idx_dir, image_size=32)) == (32, 32, 1)


def test_a_folder_is_not_registered_and_its_class_names_are_its_subfolders(folder):
  c = config(f"folder:{folder}")
  assert not data.is_registered(c) and not data.is_registered(config("tfds:mnist"))
  assert data.class_names(c) == data.class_names(c, "ko") == ("a", "b")
  assert data.num_classes(c) == 2 and data.image_shape(c) == (4, 4, 1)
  with pytest.raises(UserError) as err:
    data.class_names(c, "fr")
  assert str(err.value) == "unknown --lang='fr'; choose en or ko"


def test_load_split_reads_the_data_dir_given_else_the_configs(idx_dir, tmp_path):
  x, y = data.load_split(config(data_dir=str(tmp_path / "elsewhere")), "test", idx_dir)
  assert x.shape == (N_TEST, 28, 28, 1) and x.dtype == np.uint8
  assert ids(x) == list(range(N_TEST)) and y.tolist() == list(range(N_TEST))
  x, y = data.load_split(config(data_dir=idx_dir), "train")
  assert ids(x) == list(range(N_TRAIN)) and y.dtype == np.int32


def test_the_split_is_holdouts_and_the_first_of_each_part_for_quick_runs(idx_dir):
  train_idx, val_idx = data.train_validation_split(N_TRAIN, 0.2, 42)
  assert [train_idx.tolist(), val_idx.tolist()] == [i.tolist() for i in splits.holdout(
      N_TRAIN, 0.2, 42)]
  assert val_idx.tolist() == [0, 17, 15, 1]  # measured here (splits.holdout)
  assert len(train_idx) == 16
  got = data.load_train_validation(config(data_dir=idx_dir))
  assert ids(got["train"][0]) == train_idx.tolist()
  assert got["train"][1].tolist() == [i % 10 for i in train_idx]
  assert ids(got["validation"][0]) == val_idx.tolist()
  assert got["validation"][1].tolist() == [i % 10 for i in val_idx]
  got = data.load_train_validation(config(data_dir=idx_dir, train_size=5, validation_size=3,
                                          split_seed=7, validation_fraction=0.5))
  train_idx, val_idx = data.train_validation_split(N_TRAIN, 0.5, 7)
  assert ids(got["train"][0]) == train_idx[:5].tolist()
  assert ids(got["validation"][0]) == val_idx[:3].tolist()


def test_load_test_takes_the_first_test_size_examples(idx_dir):
  x, y = data.load_test(config(data_dir=idx_dir))
  assert ids(x) == list(range(N_TEST)) and y.tolist() == list(range(N_TEST))
  x, y = data.load_test(config(data_dir=idx_dir, test_size=3))
  assert ids(x) == [0, 1, 2] and y.tolist() == [0, 1, 2]


def test_the_training_part_is_arrays_resident_and_a_part_of_the_source_streamed(
    idx_dir, folder):
  registered = data.train_validation_inputs(config(data_dir=idx_dir, input="stream"))
  assert isinstance(registered["train"], tuple)  # read whole as arrays in any mode
  assert ids(registered["train"][0]) == data.train_validation_split(N_TRAIN, 0.2, 42)[0].tolist()
  c = config(f"folder:{folder}", train_size=5)
  train_idx, val_idx = data.train_validation_split(8, 0.2, 42)  # the folder's train split: 8
  resident = data.train_validation_inputs(c)
  assert isinstance(resident["train"], tuple) and len(resident["train"][0]) == 5
  c.input = "stream"
  streamed = data.train_validation_inputs(c)
  assert isinstance(streamed["train"], arrays.Part)
  assert streamed["train"].indices.tolist() == train_idx[:5].tolist()
  np.testing.assert_array_equal(data.first_images(streamed["train"], 5), resident["train"][0])
  for got in (resident, streamed):
    images, labels = got["validation"]
    assert images.shape == (len(val_idx), 4, 4, 1) and labels.dtype == np.int32


def test_auto_streams_what_exceeds_the_budget_unless_seeds_are_stacked(folder):
  c = config(f"folder:{folder}", image_size=512, input_budget_mib=1)  # 8 x 256 KiB > 1 MiB
  assert isinstance(data.train_validation_inputs(c)["train"], arrays.Part)
  assert isinstance(data.train_validation_inputs(c, num_seeds=2)["train"], tuple)
  c.input_budget_mib = 2  # exactly 8 x 256 KiB: fits
  assert isinstance(data.train_validation_inputs(c)["train"], tuple)


def test_first_images_of_arrays_or_a_source():
  images = np.arange(5, dtype=np.uint8).reshape(5, 1, 1, 1) * np.ones((1, 2, 2, 1), np.uint8)
  labels = np.arange(5, dtype=np.int32)
  assert ids(data.first_images((images, labels), 3)) == [0, 1, 2]
  part = arrays.Part(arrays.ArraySource(images, labels), np.array([4, 2, 0, 1]))
  assert ids(data.first_images(part, 2)) == [4, 2]
  assert ids(data.first_images(part, 9)) == [4, 2, 0, 1]


def _by_hand(paths, labels):
  h = hashlib.sha256()
  for path in paths:
    st = os.stat(path)
    h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
  h.update(np.asarray(labels, np.int64).tobytes())
  return h.hexdigest()[:16]


def test_a_folders_fingerprint_is_its_files_and_labels(folder):
  c = config(f"folder:{folder}")
  s, whole = data.sources.settings(c), data.sources.source(c, "train")
  fingerprint = data._fingerprint(s, whole)
  assert fingerprint == _by_hand(whole.paths, whole.labels)
  os.utime(whole.paths[0], ns=(0, 10 ** 9))
  assert data._fingerprint(s, whole) != fingerprint


def test_a_tfds_datasets_fingerprint_is_its_name_version_and_indices(tmp_path):
  """The builder only (nothing is downloaded or read): its name and version, the indices."""
  s = data.sources.settings(config("tfds:mnist:3.0.1", data_dir=str(tmp_path)))
  part = arrays.Part(None, np.array([3, 1, 2]))
  by_hand = hashlib.sha256(b"mnist:3.0.1" + np.int64([3, 1, 2]).tobytes()).hexdigest()[:16]
  assert data._fingerprint(s, part) == by_hand


def test_the_decode_cache_is_where_input_cache_says(folder, tmp_path, monkeypatch):
  c = config(f"folder:{folder}", input="stream")
  assert isinstance(data.train_validation_inputs(c)["train"].source, data.sources.folder
                    .FolderSource)  # input_cache "": no cache
  whole = data.sources.source(c, "train")
  key = f"folder:{folder}|0|train|{_by_hand(whole.paths, whole.labels)}"
  c.input_cache = str(tmp_path / "mine")
  cached = data.train_validation_inputs(c)["train"].source
  assert isinstance(cached, arrays.NpyFiles)
  assert os.listdir(tmp_path / "mine") == [os.path.basename(cache.directory_for(key))]
  with open(os.path.join(cache.directory_for(key, str(tmp_path / "mine")), cache.MARKER)) as f:
    assert json.load(f)["key"] == key
  del c["input_cache"]  # a config written before input_cache existed: no cache
  assert isinstance(data.train_validation_inputs(c)["train"].source,
                    data.sources.folder.FolderSource)
  c.input_cache = "auto"
  monkeypatch.setenv("CNNLAB_DATA_CACHE", str(tmp_path / "auto"))
  data.train_validation_inputs(c)
  assert os.listdir(tmp_path / "auto") == os.listdir(tmp_path / "mine")
  # a registered dataset (fashion_mnist by default) is arrays already: never cached
  arrays_source = arrays.ArraySource(np.zeros((2, 1, 1, 1), np.uint8), np.zeros(2, np.int32))
  assert data._cached(config(input_cache="auto"), arrays_source) is arrays_source
