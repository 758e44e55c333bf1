"""A run's trained weights out of cnnlab: numpy (.npz), Keras 3, PyTorch (never trains).

npz holds every variable of any model, by path ("params/conv1/kernel" -> array, as Flax
stores it). keras and torch write the course CNN (textbook_cnn at the course's sizes) for the
course's own models (cnnlab.inspect.reference_models), converting the layouts: kernels
HWIO stay HWIO in Keras and become OIHW in PyTorch, dense kernels (in, out) become (out, in),
and dense1's rows are reordered from cnnlab's (and Keras') NHWC flatten to PyTorch's NCHW one.
The file is written under a temporary name and renamed, so a failure leaves nothing.
"""

import os
import tempfile

import jax
import numpy as np

from cnnlab import rundir
from cnnlab.errors import UserError
from cnnlab.inspect import reference_models as ref
from cnnlab.inspect.restore import abstract_model, load_run

# format -> the file endings it writes (the first is the default)
SUFFIXES = {"npz": (".npz",), "keras": (".keras", ".weights.h5"), "torch": (".pt", ".pth")}
COURSE_LAYERS = ("conv1", "conv2", "dense1", "output")  # the layers keras/torch receive


def export(workdir, fmt, out=None, which="best", seed_index=0):
  """Write the run's `which` ("best"/"latest") weights as `fmt` to `out`; returns the path."""
  if fmt not in SUFFIXES:
    raise UserError(f"unknown export format {fmt!r}; choose npz, keras or torch")
  config = rundir.Run(workdir).read_config()
  out = out or os.path.join(workdir, rundir.EXPORT, config.model.name + SUFFIXES[fmt][0])
  if not out.endswith(SUFFIXES[fmt]):
    raise UserError(f"--out={out} does not end in {' or '.join(SUFFIXES[fmt])}, which "
                    f"--format={fmt} writes; name the file accordingly")
  if fmt != "npz":
    _check_course_cnn(config, workdir, fmt)
    _require(fmt)
  _, _, state, _ = load_run(workdir, which, seed_index)
  variables = {"params": state.params, **({"batch_stats": state.batch_stats}
                                          if state.batch_stats else {})}
  host = jax.tree.map(np.asarray, jax.device_get(variables))
  write = {"npz": _write_npz, "keras": _write_keras, "torch": _write_torch}[fmt]
  return _atomic(out, lambda tmp: write(host, config, tmp))


def flat(tree, prefix=""):
  """{"params/conv1/kernel": array, ...}: a nested dict's leaves by path."""
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(flat(value, f"{prefix}{key}/"))
    else:
      out[f"{prefix}{key}"] = np.asarray(value)
  return out


def torch_state_dict(params):
  """{key: numpy array} for reference_models.torch_textbook_cnn from cnnlab's parameters."""
  dense1 = params["dense1"]["kernel"]  # (7*7*64, 100), rows in NHWC flatten order
  c = params["conv2"]["kernel"].shape[-1]
  hw = int(round((dense1.shape[0] // c) ** 0.5))
  nchw = dense1.reshape(hw, hw, c, -1).transpose(2, 0, 1, 3).reshape(dense1.shape[0], -1)
  return {"0.weight": params["conv1"]["kernel"].transpose(3, 2, 0, 1),
          "0.bias": params["conv1"]["bias"],
          "3.weight": params["conv2"]["kernel"].transpose(3, 2, 0, 1),
          "3.bias": params["conv2"]["bias"],
          "7.weight": nchw.T, "7.bias": params["dense1"]["bias"],
          "10.weight": params["output"]["kernel"].T, "10.bias": params["output"]["bias"]}


def keras_model(params, num_classes=10, dropout=0.4):
  """reference_models.keras_textbook_cnn holding cnnlab's parameters (same layouts)."""
  model = ref.keras_textbook_cnn(num_classes, dropout)
  for name in COURSE_LAYERS:
    model.get_layer(name).set_weights([params[name]["kernel"], params[name]["bias"]])
  return model


def _write_npz(variables, config, path):
  with open(path, "wb") as f:  # np.savez would append ".npz" to a temporary name
    np.savez(f, **flat(variables))


def _write_keras(variables, config, path):
  model = keras_model(variables["params"], _classes(variables), config.model.get("dropout", 0.4))
  if path.endswith(".weights.h5"):
    model.save_weights(path)
  else:
    model.save(path)


def _write_torch(variables, config, path):
  import torch
  state = {k: torch.from_numpy(np.ascontiguousarray(v, np.float32))
           for k, v in torch_state_dict(variables["params"]).items()}
  ref.torch_textbook_cnn(_classes(variables)).load_state_dict(state)  # the keys and shapes fit
  torch.save(state, path)


def _classes(variables):
  return variables["params"]["output"]["kernel"].shape[-1]


def _check_course_cnn(config, workdir, fmt):
  """keras/torch: the run's model must be the course CNN at the course's sizes."""
  _, variables = abstract_model(config, workdir)
  got = {k: tuple(v["kernel"].shape) for k, v in variables["params"].items() if "kernel" in v}
  want = {"conv1": (3, 3, ref.INPUT_SHAPE[-1], ref.WIDTHS[0]),
          "conv2": (3, 3, ref.WIDTHS[0], ref.WIDTHS[1]),
          "dense1": (ref.INPUT_SHAPE[0] // 4 * ref.INPUT_SHAPE[1] // 4 * ref.WIDTHS[1], ref.HIDDEN),
          "output": (ref.HIDDEN, got.get("output", (0, 0))[-1])}
  if config.model.name != "textbook_cnn" or got != want:
    raise UserError(
        f"--format={fmt} writes the course CNN only (textbook_cnn with widths {ref.WIDTHS}, "
        f"hidden {ref.HIDDEN}, on {ref.INPUT_SHAPE[0]}x{ref.INPUT_SHAPE[1]}x"
        f"{ref.INPUT_SHAPE[2]} images); {workdir} holds {config.model.name} on "
        f"{config.dataset}: use --format=npz, which writes any model")


def _require(fmt):
  module, extra = {"keras": ("keras", "export"), "torch": ("torch", "bench")}[fmt]
  os.environ.setdefault("KERAS_BACKEND", "jax")  # Keras 3 defaults to TensorFlow
  try:
    __import__(module)
  except ImportError:
    raise UserError(f"--format={fmt} needs {module}, which is not installed: "
                    f"pip install -e '.[{extra}]' (or pip install {module})") from None


def _atomic(path, write):
  """write(tmp) then rename tmp to `path`; nothing is left at `path` or beside it on failure."""
  directory = os.path.dirname(os.path.abspath(path))
  try:
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".export-", suffix=os.path.basename(path))
    os.close(fd)
  except OSError as err:
    raise UserError(f"cannot write {path} ({err.strerror or err}); choose another --out") from None
  try:
    write(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide the file from the user's group
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return path
