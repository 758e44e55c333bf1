"""Prediction from the smoke run's checkpoint: probabilities, pictures, and user mistakes."""

import json
import os
import shutil

import jax
import numpy as np
import pytest
from PIL import Image

from cnnlab.inspect import inputs, predict
from cnnlab.train import step as step_lib
from cnnlab.inspect.predict import classify
from cnnlab.errors import UserError
from conftest import run_cli



@pytest.fixture(scope="module")
def restored(smoke_run):
  return predict.load_run(smoke_run[0])


def test_probabilities_sum_to_one_and_match_the_eval_logits(restored):
  config, _, state, _ = restored
  images, _ = inputs.dataset_images(config, "validation")
  probs = predict.probabilities(state, images[:37], batch_size=16)  # uneven last batch
  assert probs.shape == (37, 10)
  np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
  expected = jax.nn.softmax(step_lib.logits_fn(state, images[:37]), axis=-1)
  np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-7)
  top = predict.top_k(probs[0], predict.class_names(config), 3)
  assert [p for _, p in top] == sorted(probs[0], reverse=True)[:3]


def test_classify_by_index_and_korean_names(smoke_run, restored):
  config, _, state, _ = restored
  probs, names, x, what, label = classify(smoke_run[0], index=0, split="validation", lang="ko")
  assert names[8] == "가방" and label == 8 and what.startswith("validation image 0")
  images, _ = inputs.dataset_images(config, "validation")
  np.testing.assert_array_equal(x, images[:1])
  np.testing.assert_allclose(probs, predict.probabilities(state, images[:1])[0], rtol=1e-6)


@pytest.mark.slow
def test_a_saved_dataset_image_predicts_like_its_index(smoke_run, tmp_path):
  by_index = classify(smoke_run[0], index=0, split="validation")
  path = str(tmp_path / "bag.png")
  Image.fromarray(by_index[2][0, :, :, 0]).save(path)
  by_file = classify(smoke_run[0], image=path)
  np.testing.assert_array_equal(by_file[2], by_index[2])  # dark background: used as it is
  np.testing.assert_allclose(by_file[0], by_index[0], rtol=1e-6)


def test_light_background_photos_are_inverted_cropped_and_resized(tmp_path):
  photo = np.full((120, 90, 3), 245, np.uint8)  # a dark shoe-ish block on white paper
  photo[50:90, 10:80] = (40, 30, 20)
  path = str(tmp_path / "photo.jpg")
  Image.fromarray(photo).save(path)
  x, inverted = inputs.load_image(path, "fashion_mnist")
  assert inverted and x.shape == (1, 28, 28, 1) and x.dtype == np.uint8
  assert x[0, 0, 0, 0] == 0 and x[0, 14, 14, 0] > 200  # black background, light object
  assert (x[0, :, :, 0] > 100).any(axis=0).all()  # the longest side fills the width
  dark = str(tmp_path / "dark.png")
  Image.fromarray(255 - photo).save(dark)
  assert not inputs.load_image(dark, "fashion_mnist")[1]
  assert inputs.load_image(dark, "fashion_mnist", invert="yes")[1]


def test_bad_pictures_and_indices_are_user_errors(smoke_run, tmp_path):
  text = tmp_path / "notes.png"
  text.write_text("this is not a picture")
  with pytest.raises(UserError, match="not an image"):
    inputs.load_image(str(text), "fashion_mnist")
  with pytest.raises(UserError, match="does not exist"):
    inputs.load_image(str(tmp_path / "missing.jpg"), "fashion_mnist")
  with pytest.raises(UserError, match=r"out of range: the validation split has 512 images"):
    classify(smoke_run[0], index=512)
  with pytest.raises(UserError, match="unknown split"):
    classify(smoke_run[0], index=0, split="tset")
  with pytest.raises(UserError, match="one of them"):
    classify(smoke_run[0])


def test_workdirs_without_a_matching_checkpoint_are_user_errors(smoke_run, tmp_path):
  with pytest.raises(UserError, match="does not exist"):
    predict.load_run(str(tmp_path / "nowhere"))
  empty = tmp_path / "empty"
  empty.mkdir()
  shutil.copy(os.path.join(smoke_run[0], "config.json"), empty / "config.json")
  with pytest.raises(UserError, match="no checkpoint"):
    predict.load_run(str(empty))
  other = tmp_path / "other"
  shutil.copytree(smoke_run[0], other, ignore=shutil.ignore_patterns("tensorboard", ".lock"))
  config = json.loads((other / "config.json").read_text())
  config["model"] = {"name": "fashion_dnn"}
  (other / "config.json").write_text(json.dumps(config))
  with pytest.raises(UserError, match="another model than its config.json"):
    predict.load_run(str(other))


def test_predict_shell_success_and_errors(smoke_run, tmp_path):
  chart = tmp_path / "probs.png"
  done = run_cli("predict", f"--workdir={smoke_run[0]}", "--index=0", "--split=validation",
                 "--lang=ko", "--top=10", f"--chart={chart}")
  assert done.returncode == 0, done.stderr
  lines = done.stdout.splitlines()
  assert lines[0] == "validation image 0 (label: 가방)"
  probs = [float(line.split()[-1]) for line in lines[1:11]]
  assert sum(probs) == pytest.approx(1.0, abs=1e-3)
  with Image.open(chart) as im:
    assert im.format == "PNG" and im.width > 300

  bad = tmp_path / "shoe.png"
  bad.write_bytes(b"\x89PNG but truncated")
  done = run_cli("predict", f"--workdir={smoke_run[0]}", f"--image={bad}")
  assert done.returncode == 2 and "Traceback" not in done.stderr
  err = done.stderr.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("cnnlab: error:") and "not an image" in err[0]
