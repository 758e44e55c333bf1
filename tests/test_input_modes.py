"""config.input: the streamed mode feeds the resident mode's batches, in its order, from any
source; the decoded cache decodes once; auto decides by the memory budget.

The in-process tests use a 1-device mesh and small arrays drawn from a seeded RNG (fake
data, said so where made); the trainings use the real Fashion-MNIST smoke config. Training
through the CLI (SIGKILL, memory, two processes) is in test_input_stream_runs.py.
"""

import concurrent.futures
import io
import os
import pickle
import threading
import types

import jax
import numpy as np
import pytest
from PIL import Image

from cnnlab import parallel
from cnnlab.errors import UserError
from cnnlab.input import arrays, cache, modes, stream
from cnnlab.train import step as step_lib
from conftest import needs_data, smoke_config

N, B = 100, 8  # 12 steps an epoch: the last 4 examples of each epoch are dropped


def fake_split(n=N, shape=(5, 4, 1)):
  """Generated (not real) uint8 images whose first pixel spells their index."""
  rng = np.random.RandomState(0)
  images = rng.randint(0, 256, (n, *shape)).astype(np.uint8)
  images[:, 0, 0, 0] = np.arange(n) % 256
  return images, rng.randint(0, 10, n).astype(np.int32)


def state_at(step, seed=0):
  return types.SimpleNamespace(step=jax.numpy.int32(step), rng=jax.random.PRNGKey(seed))


def streamed(source, start_step, workers=0):
  """The streamed mode's global batches from `start_step` to the end of its epoch, as numpy."""
  spe = len(source) // B
  feed = stream.Stream(source, parallel.make_mesh(), B, spe,
                       step_lib.make_epoch_order(spe, len(source)), workers)
  data = feed.epoch(state_at(start_step), start_step % spe)
  out = [(np.asarray(images)[0], np.asarray(labels)[0]) for images, labels, _ in data]
  data.close()
  return out


def resident(images, labels, start_step):
  """What the resident step gathers: images[order[k*B:(k+1)*B]] for the same steps."""
  spe = len(images) // B
  order = np.asarray(step_lib.epoch_permutation(jax.random.PRNGKey(0), start_step // spe,
                                                len(images)))
  return [(images[order[k * B:(k + 1) * B]], labels[order[k * B:(k + 1) * B]])
          for k in range(start_step % spe, spe)]


def assert_same_batches(got, want):
  assert len(got) == len(want)
  for (gi, gl), (wi, wl) in zip(got, want):
    np.testing.assert_array_equal(gi, wi)
    np.testing.assert_array_equal(gl, wl)


@pytest.mark.parametrize("start_step", [0, 12 + 5])  # an epoch's start; epoch 2, mid-way
def test_stream_feeds_the_resident_order_from_any_step(start_step):
  images, labels = fake_split()
  got = streamed(arrays.ArraySource(images, labels), start_step)
  assert len(got) == 12 - start_step % 12
  assert_same_batches(got, resident(images, labels, start_step))


class Encoded:
  """A source that decodes: PNG files (generated, not real) in memory, counting decodes."""

  def __init__(self, images, labels):
    self.files, self.labels, self.decoded = [], labels, 0
    for image in images:
      buf = io.BytesIO()
      Image.fromarray(image[..., 0]).save(buf, format="PNG")
      self.files.append(buf.getvalue())

  def __len__(self):
    return len(self.files)

  def __getitem__(self, i):
    self.decoded += 1
    return np.asarray(Image.open(io.BytesIO(self.files[i])))[..., None], int(self.labels[i])


def test_the_cache_decodes_once_and_reads_back_the_same_examples(tmp_path):
  images, labels = fake_split()
  source = Encoded(images, labels)
  first = cache.cached(source, str(tmp_path / "c"), key="fake|png")
  assert source.decoded == N + 1  # every example once, plus the first for the shape
  again = cache.cached(source, str(tmp_path / "c"), key="fake|png")  # a second run
  assert source.decoded == N + 2  # only the first example, for the shape
  np.testing.assert_array_equal(again.arrays()[0], images)
  np.testing.assert_array_equal(again.arrays()[1], labels)
  assert [again[i][1] for i in (0, 57)] == [labels[0], labels[57]]
  np.testing.assert_array_equal(again[57][0], images[57])
  copy = pickle.loads(pickle.dumps(first))  # a Grain worker's own copy opens its own file
  np.testing.assert_array_equal(copy[99][0], images[99])
  assert_same_batches(streamed(again, 3), resident(images, labels, 3))
  place = cache.directory_for("fake|png", "/r")
  assert place.startswith("/r/") and place != cache.directory_for("fake|jpg", "/r")


def test_a_cache_of_another_key_or_an_unfinished_one_is_rewritten(tmp_path):
  images, labels = fake_split()
  source, where = Encoded(images, labels), str(tmp_path / "c")
  cache.cached(source, where, key="size 28")
  cache.cached(source, where, key="size 32")  # another transform: decoded again
  assert source.decoded == 2 * (N + 1)
  (tmp_path / "c" / cache.MARKER).unlink()  # as if killed before the marker was written
  cache.cached(source, where, key="size 32")
  assert source.decoded == 3 * (N + 1)


def test_writers_wanting_one_cache_at_once_decode_it_once(tmp_path):
  """The processes of a --distributed run on one host (or sweep points side by side) want one
  cache at the same moment: the first decodes, the others wait on its lock and read it. Here
  two threads, each with its own lock file descriptor (flock holds per open file)."""
  images, labels = fake_split()
  source, where, ready = CountedUnderLock(images, labels), str(tmp_path / "c"), threading.Barrier(2)

  def want(_):
    ready.wait()  # both look for the cache before either has written it
    return cache.cached(source, where, key="k")
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    got = list(pool.map(want, range(2)))
  assert source.decoded == N + 2  # every example once; the first once more by each, its shape
  for copy in got:
    np.testing.assert_array_equal(copy.arrays()[0], images)
    np.testing.assert_array_equal(copy.arrays()[1], labels)
  assert sorted(os.listdir(where)) == sorted([".lock", cache.IMAGES, cache.LABELS, cache.MARKER])


class CountedUnderLock(Encoded):
  """Encoded, read by two threads at once: its count under a lock."""
  lock = threading.Lock()

  def __getitem__(self, i):
    with self.lock:
      return super().__getitem__(i)


def test_worker_processes_decode_the_same_batches_as_threads():
  images, labels = fake_split()
  got = streamed(Encoded(images, labels), 5, workers=2)
  assert_same_batches(got, resident(images, labels, 5))


def test_auto_chooses_by_the_memory_budget():
  source = arrays.ArraySource(*fake_split(1024, (32, 32, 1)))  # exactly 1 MiB
  config = smoke_config(input="auto", input_budget_mib=1)
  assert modes.choose(config, source) == "resident"  # fits: up to and including the budget
  assert modes.choose(config, arrays.ArraySource(*fake_split(1025, (32, 32, 1)))) == "stream"
  assert modes.choose(config, arrays.ArraySource(*fake_split(1025, (32, 32, 1))),
                      num_seeds=3) == "resident"  # seeds share one resident copy
  config.input_budget_mib = 0  # the default: a quarter of min(host, one device's memory)
  devices = jax.local_devices()
  host = modes.host_memory_bytes()
  assert modes.budget_bytes(config, devices) == host // len(devices) // 4 > 2 ** 20  # CPU
  assert modes.choose(smoke_config(input="stream"), source) == "stream"


@pytest.mark.parametrize("overrides, message", [
    (dict(input="streamed"), "config.input must be auto, resident or stream, got 'streamed'"),
    (dict(input_budget_mib=-1), "config.input_budget_mib must be an integer >= 0"),
    (dict(input_workers=-2), "config.input_workers must be an integer >= 0"),
    (dict(input="stream", num_seeds=2), "config.input=stream trains one seed per run; set "
                                        "--config.num_seeds=1 or --config.input=resident"),
])
def test_bad_input_settings_are_one_user_error(overrides, message):
  from cnnlab import config as config_lib
  with pytest.raises(UserError, match=f"^{message}"):
    config_lib.check(smoke_config(**overrides))


def test_npy_files_refuse_what_is_not_uint8_images(tmp_path):
  np.save(tmp_path / "f.npy", np.zeros((3, 4, 4, 1), np.float32))
  with pytest.raises(UserError, match=r"f.npy holds float32 \(3, 4, 4, 1\); expected uint8"):
    arrays.NpyFiles(str(tmp_path / "f.npy"), str(tmp_path / "f.npy"))


@needs_data
def test_smoke_stream_equals_resident_bit_for_bit(smoke_run, tmp_path):
  from cnnlab.train import train_and_evaluate
  workdir = str(tmp_path / "stream")
  results = train_and_evaluate(smoke_config(input="stream"), workdir, log=lambda *a: None)
  read = lambda d: open(f"{d}/metrics.jsonl").read()
  assert read(workdir) == read(smoke_run[0])
  drop = lambda r: {k: v for k, v in r.items() if k != "train_wall_time_s"}
  assert drop(results) == drop(smoke_run[1])
