"""The TFDS path (online users, MNIST, CIFAR-10), exercised offline with tfds.testing.mock_data.

Mock data: random images of each dataset's real shape and dtype, served by TFDS itself (the
only fake data in the suite, and it says so). Each dataset loads through cnnlab.data's TFDS
branch, trains an epoch and is evaluated on its test split.
"""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from cnnlab import data, download
from cnnlab.input import registered
from cnnlab.train import train_and_evaluate
from conftest import smoke_config


@pytest.fixture
def online(monkeypatch, tmp_path):
  """No local IDX files, and the network 'answers': data.load_split goes to TFDS."""
  monkeypatch.setattr(registered, "network_reachable", lambda: True)
  monkeypatch.setattr(download, "FILES", {})  # no direct download (tests/test_download.py)
  for name, (_, shape, names) in list(registered.DATASETS.items()):
    monkeypatch.setitem(registered.DATASETS, name, (str(tmp_path / "absent"), shape, names))


@pytest.mark.parametrize("name, shape", [
    ("fashion_mnist", (28, 28, 1)),
    pytest.param("mnist", (28, 28, 1), marks=pytest.mark.slow),
    pytest.param("cifar10", (32, 32, 3), marks=pytest.mark.slow)])
def test_tfds_datasets_load_train_and_evaluate(online, tmp_path, name, shape):
  with tfds.testing.mock_data(num_examples=160):
    images, labels = data.load_split(name, "train")
    assert images.shape == (160, *shape) and images.dtype == np.uint8
    assert labels.dtype == np.int32 and 0 <= labels.min() and labels.max() < 10
    config = smoke_config(dataset=name, data_dir="", train_size=0, validation_size=0,
                          test_size=0, num_epochs=1, eval_batch_size=32)
    results = train_and_evaluate(config, str(tmp_path / name), log=lambda *a: None)
  # 160 mock images: 128 train (4 steps of 32), 32 validation; 160 test images
  assert results["epochs"] == 1 and results["best_step"] == 4
  correct = results["test_accuracy"] * 160  # a count of the 160 test images, each once
  assert correct == pytest.approx(round(correct), abs=1e-4)


def test_tfds_offline_is_one_line_naming_the_fix(tmp_path, monkeypatch):
  monkeypatch.setattr(registered, "network_reachable", lambda: False)
  monkeypatch.setattr(download, "FILES", {})  # the TFDS branch (tests/test_download.py)
  monkeypatch.setitem(registered.DATASETS, "mnist", (str(tmp_path / "absent"), (28, 28, 1),
                                                     registered.DATASETS["mnist"][2]))
  with pytest.raises(registered.UserError, match="TFDS cannot download it.*--data_dir"):
    data.load_split("mnist", "train")
