"""Fashion-MNIST loading: the real IDX files, corrupt files, the split."""

import gzip
import struct

import numpy as np
import pytest

from cnnlab import data, download
from cnnlab.input import registered
from cnnlab.errors import UserError
from conftest import DATA_DIR, needs_data


@needs_data
def test_real_idx_files():
  x, y = data.load_split("fashion_mnist", "train", DATA_DIR)
  xt, yt = data.load_split("fashion_mnist", "test", DATA_DIR)
  assert x.shape == (60000, 28, 28, 1) and x.dtype == np.uint8
  assert xt.shape == (10000, 28, 28, 1) and yt.shape == (10000,)
  assert y[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]  # first image: an ankle boot
  assert data.class_names("fashion_mnist")[y[0]] == "Ankle boot"
  assert data.class_names("fashion_mnist", "ko")[9] == "앵클 부츠"
  assert np.bincount(y).tolist() == [6000] * 10 and x.max() == 255 and x.min() == 0


def test_split_sizes_deterministic_and_disjoint():
  tr, va = data.train_validation_split(60000, 0.2, 42)
  assert (len(tr), len(va)) == (48000, 12000)
  assert len(np.union1d(tr, va)) == 60000
  tr2, va2 = data.train_validation_split(60000, 0.2, 42)
  np.testing.assert_array_equal(va, va2)
  _, va3 = data.train_validation_split(60000, 0.2, 43)
  assert not np.array_equal(va, va3)


@needs_data
def test_validation_image_0_is_the_courses_bag():
  """The split equals sklearn's train_test_split(random_state=42) used by the course."""
  _, y = data.load_split("fashion_mnist", "train", DATA_DIR)
  _, va = data.train_validation_split(60000, 0.2, 42)
  assert data.class_names("fashion_mnist")[y[va[0]]] == "Bag"


def _write_idx(path, magic, dims, payload, compress=True):
  raw = struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims) + payload
  with (gzip.open if compress else open)(path, "wb") as f:
    f.write(raw)


def _fake_dir(tmp_path, n=5, labels=None, image_magic=0x0803, truncate=0, label_n=None):
  """A synthetic (fake, tiny) IDX directory for error-path tests only."""
  img = np.zeros((n, 28, 28), np.uint8).tobytes()
  _write_idx(tmp_path / "train-images-idx3-ubyte.gz", image_magic, (n, 28, 28),
             img[:len(img) - truncate])
  lab = np.asarray(labels if labels is not None else [0] * (label_n or n), np.uint8)
  _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", 0x0801, (len(lab),), lab.tobytes())
  return str(tmp_path)


def test_small_valid_idx_dir_loads(tmp_path):
  x, y = data.load_split("fashion_mnist", "train", _fake_dir(tmp_path, labels=[1, 2, 3, 4, 5]))
  assert x.shape == (5, 28, 28, 1) and y.tolist() == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("kwargs, message", [
    (dict(image_magic=0x0801), "magic number"),
    (dict(truncate=100), "truncated"),
    (dict(labels=[0, 1, 2, 3, 12]), "label 12"),
    (dict(label_n=4), "do not belong together"),
])
def test_corrupt_idx_files_are_refused(tmp_path, kwargs, message):
  with pytest.raises(UserError, match=message):
    data.load_split("fashion_mnist", "train", _fake_dir(tmp_path, **kwargs))


def test_garbled_gzip_is_refused(tmp_path):
  _fake_dir(tmp_path)
  (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
  with pytest.raises(UserError, match="cannot read"):
    data.load_split("fashion_mnist", "train", str(tmp_path))


def test_missing_directory_and_files(tmp_path):
  with pytest.raises(UserError, match="does not exist"):
    data.load_split("fashion_mnist", "train", str(tmp_path / "nope"))
  with pytest.raises(UserError, match="lacks the train IDX files"):
    data.load_split("fashion_mnist", "train", str(tmp_path))
  with pytest.raises(UserError, match="unknown dataset 'fashion_mnst'.*fashion_mnist"):
    data.load_split("fashion_mnst", "train")


def test_offline_tfds_fails_fast_with_a_hint(monkeypatch):
  """No local files and no network: one clear error, no long download retries."""
  monkeypatch.setitem(registered.DATASETS, "fashion_mnist",
                      ("/nonexistent", (28, 28, 1), registered.FASHION_MNIST_CLASSES))
  monkeypatch.setattr(registered, "network_reachable", lambda *a, **k: False)
  monkeypatch.setattr(download, "FILES", {})  # the TFDS branch (tests/test_download.py)
  with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
    data.load_split("fashion_mnist", "train")
