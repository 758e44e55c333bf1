"""Where arrays live: a 1-D device mesh for data parallelism, and seeds stacked for vmap.

Data parallel the GSPMD way: parameters and the (small) dataset are replicated, each step's
batch is constrained to be split over the "data" axis, and XLA inserts the gradient
all-reduce. One CPU, one GPU, 8 TPU cores or 8 GPUs run the same code; multi-host runs call
`jax.distributed.initialize()` first (the train command's --distributed flag).
"""

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def make_mesh(num_devices=0):
  """A mesh over the first `num_devices` devices (0 = all) with one axis, "data"."""
  devices = jax.devices()  # the count was checked with the config (config.check_devices)
  return Mesh(devices[:num_devices or len(devices)], ("data",))


def replicated(mesh):
  return NamedSharding(mesh, P())


def batch_sharded(mesh):
  """Leading (batch) axis split over the devices, the rest replicated."""
  return NamedSharding(mesh, P("data"))


def stack_seeds(fn, seeds):
  """vmap `fn(key)` over PRNGKey(seed) for each seed: one stacked pytree, leading axis = seed."""
  import jax.numpy as jnp
  keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
  return jax.vmap(fn)(keys)
