"""Where arrays live: a 1-D device mesh for data parallelism, and seeds stacked for vmap.

Data parallel the GSPMD way: parameters and the (small) dataset are replicated, each step's
batch is constrained to be split over the "data" axis, and XLA inserts the gradient
all-reduce. One CPU, one GPU, 8 TPU cores or 8 GPUs run the same code; multi-host runs call
`jax.distributed.initialize()` first (the train command's --distributed flag).
"""

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from cnnlab.errors import UserError


def make_mesh(num_devices=0):
  """A mesh over the first `num_devices` devices (0 = all) with one axis, "data"."""
  devices = jax.devices()
  if num_devices < 0 or num_devices > len(devices):
    raise UserError(f"config.num_devices={num_devices} but {len(devices)} device(s) are "
                    f"available ({devices[0].platform}); use 0 (all) or 1..{len(devices)}")
  return Mesh(devices[:num_devices or len(devices)], ("data",))


def replicated(mesh):
  return NamedSharding(mesh, P())


def batch_sharded(mesh):
  """Leading (batch) axis split over the devices, the rest replicated."""
  return NamedSharding(mesh, P("data"))


def check_divisible(batch_size, mesh, field):
  n = mesh.devices.size
  if batch_size % n:
    raise UserError(f"config.{field}={batch_size} is not divisible by the {n} devices; use a "
                    f"multiple of {n} (e.g. --config.{field}={max(n, batch_size // n * n)}) or "
                    f"--config.num_devices=1")


def stack_seeds(fn, seeds):
  """vmap `fn(key)` over PRNGKey(seed) for each seed: one stacked pytree, leading axis = seed."""
  import jax.numpy as jnp
  keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
  return jax.vmap(fn)(keys)
