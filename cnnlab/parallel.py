"""Where arrays live: a 1-D device mesh for data parallelism, and seeds stacked for vmap.

Data parallel the GSPMD way: parameters and the (small) dataset are replicated, each step's
batch is constrained to be split over the "data" axis, and XLA inserts the gradient
all-reduce. One CPU, one GPU, 8 TPU cores or 8 GPUs run the same code. Multi-process runs
(TPU pod slices, SLURM, N processes on one machine) call `initialize_distributed()` first
(the train command's --distributed): the mesh then spans every process's devices, and
`put` places host values on it, each process filling only its own devices' shards.
"""

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from cnnlab.errors import UserError

# A process whose peer died learns it from the coordinator's missing heartbeats (JAX's
# default: 100 s); cnnlab's runs wait this long instead (CNNLAB_HEARTBEAT_TIMEOUT_S).
HEARTBEAT_TIMEOUT_S = 20


def initialize_distributed(environ=os.environ):
  """jax.distributed.initialize() from the environment, before any other JAX call.

  Cloud TPU pods and SLURM (srun) are detected by JAX itself; elsewhere set
  JAX_COORDINATOR_ADDRESS=host:port, JAX_NUM_PROCESSES=N and JAX_PROCESS_ID=i (0..N-1).
  CPU processes exchange gradients over gloo.
  """
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  try:
    kwargs = {key: int(environ[var]) for key, var in (("num_processes", "JAX_NUM_PROCESSES"),
                                                      ("process_id", "JAX_PROCESS_ID"))
              if environ.get(var)}
    timeout = int(environ.get("CNNLAB_HEARTBEAT_TIMEOUT_S", HEARTBEAT_TIMEOUT_S))
  except ValueError as err:
    raise UserError(f"--distributed: {err}; JAX_NUM_PROCESSES, JAX_PROCESS_ID and "
                    "CNNLAB_HEARTBEAT_TIMEOUT_S must be integers") from None
  try:
    jax.distributed.initialize(heartbeat_timeout_seconds=timeout, **kwargs)
  except (ValueError, RuntimeError) as err:  # no cluster found, coordinator unreachable
    raise UserError(f"--distributed could not start ({' '.join(str(err).split())[:200]}); "
                    "run under srun or on a Cloud TPU pod, or set JAX_COORDINATOR_ADDRESS="
                    "host:port, JAX_NUM_PROCESSES and JAX_PROCESS_ID") from None


def is_primary():
  """True in the process that writes the run directory's files (process 0)."""
  return jax.process_index() == 0


def put(tree, sharding):
  """jax.device_put of host (or local) values, also onto a mesh spanning several processes.

  Every process passes the same values; each copies only the shards its own devices hold
  (a process feeds its share of a sharded batch, and a replica of replicated values).
  """
  if sharding.is_fully_addressable:
    return jax.device_put(tree, sharding)

  def put_leaf(x):
    x = np.asarray(jax.device_get(x))  # explicit: allowed under a transfer guard
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

  return jax.tree.map(put_leaf, tree)


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
