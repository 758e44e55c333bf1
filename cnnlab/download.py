"""The registered datasets' IDX files, fetched from their canonical URLs and checked (no TensorFlow).

Used when neither --data_dir nor the Debian package's directory holds the files (Colab has no
TensorFlow, and TFDS must prepare a dataset before reading it). Each file is checked against
the SHA-256 recorded here and cached per user: $CNNLAB_DOWNLOAD_DIR/NAME, by default
~/.cache/cnnlab/downloads/NAME. $CNNLAB_DATA_MIRROR replaces the host (a local mirror of the
same files: the checksums still apply).

A file is written to a temporary name in the cache directory and renamed only once complete
and verified, so the cache never holds a half-written or unverified file under a real name.
"""

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request

from cnnlab import files
from cnnlab.errors import UserError, warn

# name -> (base URL, {file: (bytes, SHA-256)}): sizes and digests as TFDS 4.9.10 records them
# (tensorflow_datasets/url_checksums/{fashion_mnist,mnist}.txt). MNIST's own site
# (yann.lecun.com) refuses downloads; TFDS and Keras use Google's copy.
FILES = {
    "fashion_mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com", {
        "train-images-idx3-ubyte.gz": (26421880, "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        "train-labels-idx1-ubyte.gz": (29515, "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        "t10k-images-idx3-ubyte.gz": (4422102, "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        "t10k-labels-idx1-ubyte.gz": (5148, "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    }),
    "mnist": ("https://storage.googleapis.com/cvdf-datasets/mnist", {
        "train-images-idx3-ubyte.gz": (9912422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        "train-labels-idx1-ubyte.gz": (28881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        "t10k-images-idx3-ubyte.gz": (1648877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        "t10k-labels-idx1-ubyte.gz": (4542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    }),
}
# cifar10 is not here: its canonical file is a 170 MB tar of CIFAR's own binary records (label
# byte + CHW pixels), not IDX; it stays on TFDS until a reader for that format exists.
TIMEOUT_S = 10  # per connection attempt and per read: a stalled server fails, a slow one not
_CHUNK = 1 << 20
# Refused, unresolvable, timed out, reset, closed mid-file (IncompleteRead), a malformed URL.
_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, TimeoutError,
                   ConnectionError, ValueError)


def available(name):
  """True when `name`'s files can be downloaded by this module."""
  return name in FILES


def cache_dir(name):
  return os.path.join(files.user_cache("CNNLAB_DOWNLOAD_DIR", "downloads"), name)


def fetch(name, log=warn):
  """The cache directory of dataset `name`, holding its verified files (downloaded if missing).

  Errors (offline, HTTP error, interrupted transfer, checksum mismatch, unwritable cache) are
  UserErrors naming the file and the fix; nothing is left under a file's real name.
  """
  base, wanted = FILES[name]
  base = (os.environ.get("CNNLAB_DATA_MIRROR") or base).rstrip("/")
  directory = cache_dir(name)
  missing = [f for f in wanted if not os.path.exists(os.path.join(directory, f))]
  if not missing:
    return directory
  try:
    os.makedirs(directory, exist_ok=True)
  except OSError as err:
    raise _unwritable(directory, err) from None
  for fname in missing:
    size, sha256 = wanted[fname]
    _download(f"{base}/{fname}", os.path.join(directory, fname), size, sha256, name)
  total = sum(wanted[f][0] for f in missing) / 1e6
  log(f"cnnlab: note: downloaded {name} ({len(missing)} files, {total:.1f} MB, SHA-256 "
      f"checked) into {directory}")
  return directory


def _download(url, path, size, sha256, name):
  """`url` -> `path` through a temporary file, renamed only when complete and verified."""
  directory, fname = os.path.split(path)
  try:
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{fname}.", suffix=".part")
  except OSError as err:
    raise _unwritable(directory, err) from None
  try:
    with os.fdopen(fd, "wb") as out:
      got, digest = _copy(url, out, size, name)
    if got != size or digest != sha256:
      raise _mismatch(url, f"more than the {size} bytes expected" if got != size
                      else f"SHA-256 {digest[:16]}..., expected {sha256[:16]}...")
    os.replace(tmp, path)  # atomic: the real name only ever holds a verified file
  except OSError as err:
    raise _unwritable(directory, err) from None
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def _copy(url, out, size, name):
  """Stream `url` into `out`: (bytes written, SHA-256 hex). Stops past `size` + 1 bytes."""
  h, got = hashlib.sha256(), 0
  try:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
      declared = response.headers.get("Content-Length")
      if declared is not None and declared.isdigit() and int(declared) != size:
        raise _mismatch(url, f"the server's file has {declared} bytes, expected {size}")
      while got <= size:
        chunk = response.read(_CHUNK)
        if not chunk:
          break
        h.update(chunk)
        out.write(chunk)  # a local write error (disk full) is an OSError: _download's
        got += len(chunk)
  except UserError:
    raise  # a ValueError, but not a network one
  except urllib.error.HTTPError as err:
    raise _unreachable(name, url, f"the server answered HTTP {err.code}") from None
  except _NETWORK_ERRORS as err:
    if not got:
      raise _unreachable(name, url, _reason(err)) from None
    raise _interrupted(url, got, size, _reason(err)) from None
  if got < size:  # the server closed the connection early without saying how long the file is
    raise _interrupted(url, got, size, "connection closed")
  return got, h.hexdigest()


def _mismatch(url, what):
  fname = url.rsplit("/", 1)[-1]
  return UserError(f"{url} does not match the file cnnlab knows ({what}); nothing was kept. "
                   f"Run the command again; if it persists, the server or a proxy serves "
                   f"another file: get {fname} elsewhere and pass --data_dir=DIR holding it")


def _interrupted(url, got, size, reason):
  return UserError(f"the download of {url} stopped after {got} of {size} bytes ({reason}); "
                   "nothing was kept: run the command again")


def _reason(err):
  reason = getattr(err, "reason", None) or err
  return " ".join(str(reason).split())[:120] or type(err).__name__


def _unreachable(name, url, reason):
  return UserError(f"cannot download {name} from {url} ({reason}); connect to the internet "
                   f"and run again, or pass --data_dir=DIR holding the {name} IDX files")


def _unwritable(directory, err):
  return UserError(f"cannot write the download cache {directory} ({err.strerror or err}); set "
                   "CNNLAB_DOWNLOAD_DIR to a writable directory, or pass --data_dir=DIR holding "
                   "the IDX files")
