"""cnnlab.download against a local HTTP server on 127.0.0.1 (no internet needed).

The served files are generated IDX files (random pixels and labels, made here; fake data on
purpose: what is tested is the transfer, not the pictures), and the table of checksums is
replaced by theirs, except in the mismatch cases, which serve them under the real table.
"""

import gzip
import hashlib
import http.server
import os
import struct
import threading
import time

import numpy as np
import pytest

from cnnlab import data, download
from cnnlab.input import registered
from cnnlab.errors import UserError
from conftest import one_line_error, run_cli, REPO


def _idx(dims, values):
  return struct.pack(">I", 0x0800 | len(dims)) + struct.pack(f">{len(dims)}I", *dims) + values


def generated_files(n_train=60, n_test=20):
  """{file name: gzipped IDX bytes} of a fake 28x28 dataset with 10 classes."""
  rng = np.random.default_rng(0)
  out = {}
  for prefix, n in (("train", n_train), ("t10k", n_test)):
    images = rng.integers(0, 256, (n, 28, 28), np.uint8)
    labels = rng.integers(0, 10, n, np.uint8)
    out[f"{prefix}-images-idx3-ubyte.gz"] = gzip.compress(_idx(images.shape, images.tobytes()))
    out[f"{prefix}-labels-idx1-ubyte.gz"] = gzip.compress(_idx(labels.shape, labels.tobytes()))
  return out


class _Handler(http.server.BaseHTTPRequestHandler):
  """Serves self.server.files; a name in self.server.cut gets its full Content-Length but
  only half its bytes before the connection closes (an interrupted download)."""

  def do_GET(self):  # noqa: N802 (http.server's name)
    self.server.requests.append(self.path)
    body = self.server.files.get(self.path.rsplit("/", 1)[-1])
    if body is None:
      self.send_error(404)
      return
    self.send_response(200)
    self.send_header("Content-Length", str(len(body)))
    self.end_headers()
    cut = self.path.rsplit("/", 1)[-1] in self.server.cut
    self.wfile.write(body[:len(body) // 2] if cut else body)
    self.close_connection = True

  def log_message(self, *args):
    pass


@pytest.fixture
def server():
  httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
  httpd.files, httpd.cut, httpd.requests = generated_files(), set(), []
  thread = threading.Thread(target=httpd.serve_forever, daemon=True)
  thread.start()
  yield httpd
  httpd.shutdown()
  httpd.server_close()


@pytest.fixture
def mirror(server, tmp_path, monkeypatch):
  """The local server as the mirror, a fresh download cache, and the generated files'
  checksums in place of the real ones (for "fake_mnist", a name no real dataset has)."""
  monkeypatch.setenv("CNNLAB_DATA_MIRROR", f"http://127.0.0.1:{server.server_port}/data")
  monkeypatch.setenv("CNNLAB_DOWNLOAD_DIR", str(tmp_path / "cache"))
  table = {f: (len(b), hashlib.sha256(b).hexdigest()) for f, b in server.files.items()}
  monkeypatch.setitem(download.FILES, "fake_mnist", ("http://unused.invalid", table))
  return server, tmp_path / "cache" / "fake_mnist"


def test_download_caches_and_reuses(mirror):
  server, cache = mirror
  notes = []
  assert download.fetch("fake_mnist", log=notes.append) == str(cache)
  assert sorted(os.listdir(cache)) == sorted(server.files)  # no temporary file left
  for name, body in server.files.items():
    assert (cache / name).read_bytes() == body
  assert len(server.requests) == 4 and len(notes) == 1 and "4 files" in notes[0]
  images, labels = registered.load_idx_split(str(cache), "train", 10, (28, 28, 1))
  assert images.shape == (60, 28, 28, 1) and labels.shape == (60,)
  assert download.fetch("fake_mnist", log=notes.append) == str(cache)  # from the cache
  assert len(server.requests) == 4 and len(notes) == 1


def test_only_missing_files_are_downloaded(mirror):
  server, cache = mirror
  download.fetch("fake_mnist", log=lambda *a: None)
  os.remove(cache / "t10k-labels-idx1-ubyte.gz")
  download.fetch("fake_mnist", log=lambda *a: None)
  assert server.requests[4:] == ["/data/t10k-labels-idx1-ubyte.gz"]


def test_checksum_mismatch_keeps_nothing(mirror):
  server, cache = mirror
  name = "train-labels-idx1-ubyte.gz"
  server.files[name] = server.files[name][:-1] + bytes([server.files[name][-1] ^ 1])
  with pytest.raises(UserError, match=f"{name} does not match.*SHA-256.*nothing was kept"):
    download.fetch("fake_mnist", log=lambda *a: None)
  assert name not in os.listdir(cache)
  assert not [f for f in os.listdir(cache) if f.endswith(".part")]


def test_interrupted_download_keeps_nothing(mirror):
  server, cache = mirror
  server.cut.add("train-images-idx3-ubyte.gz")
  half = len(server.files["train-images-idx3-ubyte.gz"]) // 2
  with pytest.raises(UserError, match=f"stopped after {half} of"):
    download.fetch("fake_mnist", log=lambda *a: None)
  assert "train-images-idx3-ubyte.gz" not in os.listdir(cache)
  assert not [f for f in os.listdir(cache) if f.endswith(".part")]
  server.cut.clear()  # the next attempt completes
  download.fetch("fake_mnist", log=lambda *a: None)
  assert (cache / "train-images-idx3-ubyte.gz").read_bytes() == \
      server.files["train-images-idx3-ubyte.gz"]


def test_offline_is_one_line_and_fast(tmp_path, monkeypatch):
  with __import__("socket").socket() as s:  # a port nobody listens on: connection refused
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  monkeypatch.setenv("CNNLAB_DATA_MIRROR", f"http://127.0.0.1:{port}")
  monkeypatch.setenv("CNNLAB_DOWNLOAD_DIR", str(tmp_path / "cache"))
  start = time.perf_counter()
  with pytest.raises(UserError, match="cannot download mnist from http://127.0.0.1.*refused.*"
                                      "--data_dir=DIR"):
    download.fetch("mnist")
  assert time.perf_counter() - start < 5
  assert os.listdir(tmp_path / "cache" / "mnist") == []


def test_data_uses_the_download_when_no_local_files(mirror, monkeypatch):
  """load_split's order: no --data_dir, no Debian directory -> the downloaded files."""
  server, cache = mirror
  monkeypatch.setitem(registered.DATASETS, "fake_mnist", ("/nonexistent", (28, 28, 1), tuple("0123456789")))
  images, labels = data.load_split("fake_mnist", "test", None)
  assert images.shape == (20, 28, 28, 1) and len(server.requests) == 4
  expected = np.frombuffer(gzip.decompress(server.files["t10k-labels-idx1-ubyte.gz"])[8:], np.uint8)
  np.testing.assert_array_equal(labels, expected)


def test_train_command_reports_a_mismatch_in_one_line(server, tmp_path, monkeypatch):
  """The real table (mnist's checksums) against generated files: exit 2, one line, no file."""
  if registered.has_idx_files(registered.DATASETS["mnist"][0]):
    pytest.skip(f"{registered.DATASETS['mnist'][0]} holds MNIST here, so nothing is downloaded")
  monkeypatch.setenv("CNNLAB_DATA_MIRROR", f"http://127.0.0.1:{server.server_port}")
  monkeypatch.setenv("CNNLAB_DOWNLOAD_DIR", str(tmp_path / "cache"))
  proc = run_cli("train", f"--config={REPO}/experiments/smoke.py", "--config.dataset=mnist",
                 f"--workdir={tmp_path}/run")
  one_line_error(proc, "train-images-idx3-ubyte.gz", "does not match", "--data_dir")
  assert os.listdir(tmp_path / "cache" / "mnist") == [] and not os.path.exists(tmp_path / "run")


def test_ctrl_c_mid_file_keeps_nothing(mirror, monkeypatch):
  """Ctrl-C (KeyboardInterrupt) after the first 100 bytes of a file: no file, no temporary."""
  server, cache = mirror
  real_urlopen = download.urllib.request.urlopen

  class Interrupted:
    def __init__(self, url, timeout):
      self.response, self.reads = real_urlopen(url, timeout=timeout), 0
      self.headers = self.response.headers

    def __enter__(self):
      return self

    def __exit__(self, *exc):
      self.response.close()

    def read(self, n):
      self.reads += 1
      if self.reads > 1:
        raise KeyboardInterrupt
      return self.response.read(100)

  monkeypatch.setattr(download.urllib.request, "urlopen", Interrupted)
  with pytest.raises(KeyboardInterrupt):
    download.fetch("fake_mnist", log=lambda *a: None)
  assert os.listdir(cache) == []
