"""The one evaluation: exact sums over padded batches, for training, prediction and bench.

`evaluate` gives mean loss and accuracy over a split (validation every epoch, test once);
`probabilities` gives the class probabilities of images (predict, viz). Both run the model
through step.logits_fn: inference mode (dropout off, BatchNorm running averages), optionally
averaged with the mirror image (flip test-time augmentation).
"""

import functools
import math
import threading

import jax
import jax.numpy as jnp
import numpy as np

from cnnlab import parallel
from cnnlab.train import step as step_lib
from cnnlab.compilation import compile_options


def eval_batches(images, labels, batch_size, sharding=None):
  """Device batches covering every example once: the last one padded and masked."""
  n = len(images)
  padded = math.ceil(n / batch_size) * batch_size
  pad = lambda a: np.concatenate([a, np.zeros((padded - n, *a.shape[1:]), a.dtype)])
  mask = np.arange(padded) < n
  put = lambda a: parallel.put(a, sharding) if sharding is not None else jax.device_put(a)
  return [{"image": put(pad(images)[i:i + batch_size]), "label": put(pad(labels)[i:i + batch_size]),
           "mask": put(mask[i:i + batch_size])} for i in range(0, padded, batch_size)]


def evaluate(state, batches, num_seeds=1, flip_tta=False):
  """Mean loss and accuracy over prepared eval batches (one host read at the end).

  Values are floats, or arrays with one entry per seed for a stacked multi-seed state.
  """
  accumulate, sums = _eval_program(state, num_seeds, flip_tta)
  for batch in batches:
    sums = accumulate(state, sums, batch)
  sums = jax.device_get(sums)
  out = {"loss": sums["loss"] / sums["count"], "accuracy": sums["correct"] / sums["count"]}
  if parallel.stacked(num_seeds):
    return {k: np.asarray(v, np.float64) for k, v in out.items()}
  return {k: float(v) for k, v in out.items()}


def precompile(jitted, *args):
  """Compile `jitted` for the arguments of its first call, on a background thread.

  XLA compiles without holding the GIL, so on a 2-core CPU the evaluation program compiles
  while the main thread compiles the training step. Pass the arrays themselves: their
  shardings (committed or not) are part of what the call will look up. Join the thread
  before that call (a call during the compile compiles again); join() raises its error.
  """
  thread = _Compile(jitted, args)
  thread.start()
  return thread


class _Compile(threading.Thread):
  """A compile on a background thread whose error is raised by join(), not lost."""

  def __init__(self, jitted, args):
    super().__init__(daemon=True)
    self.jitted, self.args, self.error = jitted, args, None

  def run(self):
    try:
      self.jitted.lower(*self.args).compile()
    except Exception as err:  # pylint: disable=broad-except  (kept for join to raise)
      self.error = err

  def join(self, timeout=None):
    super().join(timeout)
    if self.error is not None:
      raise self.error


def precompile_evaluation(state, batches, num_seeds=1, flip_tta=False):
  """Compile evaluate's program on a background thread; join it before calling evaluate."""
  accumulate, sums = _eval_program(state, num_seeds, flip_tta)
  return precompile(accumulate, state, sums, batches[0])


def _eval_program(state, num_seeds, flip_tta):
  """(jitted accumulate, zero sums placed where the state lives)."""
  accumulate, zeros = eval_accumulate_fn(num_seeds, flip_tta)
  if isinstance(state.step, jax.Array):  # made there: no transfer (multi-process meshes too)
    return accumulate, _zeros_on(num_seeds, state.step.sharding)()
  return accumulate, zeros()


@functools.lru_cache(maxsize=None)
def _zeros_on(num_seeds, sharding):
  return jax.jit(step_lib.per_seed(_zero_eval_sums, num_seeds), out_shardings=sharding)


def _zero_eval_sums():
  return {k: jnp.zeros((), jnp.float32) for k in ("loss", "correct", "count")}


@functools.lru_cache(maxsize=None)
def eval_accumulate_fn(num_seeds=1, flip_tta=False):
  """jit((state, sums, batch) -> sums + eval_step(state, batch)), vmapped over seeds if any."""

  def accumulate(state, sums, batch):
    m = step_lib.eval_step(state, batch, flip_tta)
    return {k: sums[k] + m[k] for k in sums}

  if parallel.stacked(num_seeds):
    accumulate = jax.vmap(accumulate, in_axes=(0, 0, None))
  zeros = jax.jit(step_lib.per_seed(_zero_eval_sums, num_seeds))
  return jax.jit(accumulate, compiler_options=compile_options()), zeros


def _logits(state, images):
  return _logits_program()(state, images)


@functools.lru_cache(maxsize=None)
def _logits_program():  # made on first use: compile_options() starts JAX's backend
  return jax.jit(step_lib.logits_fn, compiler_options=compile_options())


def probabilities(state, images, batch_size=1000):
  """Softmax of the eval-mode logits of uint8 or float images (N, H, W, C), as numpy."""
  out = [np.asarray(jax.nn.softmax(_logits(state, images[i:i + batch_size]), axis=-1))
         for i in range(0, len(images), batch_size)]
  return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
