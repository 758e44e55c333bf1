"""Where arrays live: a 1-D device mesh for data parallelism, and seeds stacked for vmap.

Data parallel the GSPMD way: parameters and the (small) dataset are replicated, each step's
batch is constrained to be split over the "data" axis, and XLA inserts the gradient
all-reduce. One CPU, one GPU, 8 TPU cores or 8 GPUs run the same code. Multi-process runs
(TPU pod slices, SLURM, N processes on one machine) call `initialize_distributed()` first
(the train command's --distributed): the mesh then spans every process's devices, and
`put` places host values on it, each process filling only its own devices' shards.
"""

import contextlib
import os
import sys
import threading
import time

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from cnnlab.errors import UserError
from cnnlab.supervisor import PEER_LOST_EXIT, peer_lost_line, report_process

# How long a process may go unheard before the others stop (CNNLAB_PEER_TIMEOUT_S), and how
# often each process says it is alive. JAX's own heartbeat timeout is set well above it: its
# reaction to a dead peer is a fatal C++ log (SIGABRT, pages of stack traces). A dead process 0
# (the coordinator) brings that abort within a second: cnnlab.supervisor turns it into the line.
PEER_TIMEOUT_S, PEER_PING_S = 30, 1.0
_PEER_ERRORS = ("Gloo", "Connection reset", "Connection closed", "heartbeat", "Barrier")
_ALIVE, _DONE = "cnnlab/alive/", "cnnlab/done/"


def initialize_distributed(environ=os.environ):
  """jax.distributed.initialize() from the environment, before any other JAX call.

  Cloud TPU pods and SLURM (srun) are detected by JAX itself; elsewhere set
  JAX_COORDINATOR_ADDRESS=host:port, JAX_NUM_PROCESSES=N and JAX_PROCESS_ID=i (0..N-1).
  CPU processes exchange gradients over gloo.
  """
  kwargs = {key: _number(environ, var, int) for key, var in (
      ("num_processes", "JAX_NUM_PROCESSES"), ("process_id", "JAX_PROCESS_ID")) if var in environ}
  timeout = _number(environ, "CNNLAB_PEER_TIMEOUT_S", float, PEER_TIMEOUT_S)
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  try:
    jax.distributed.initialize(heartbeat_timeout_seconds=int(max(100, 4 * timeout)), **kwargs)
  except (ValueError, RuntimeError) as err:  # no cluster found, coordinator unreachable
    raise UserError(f"--distributed could not start ({' '.join(str(err).split())[:200]}); "
                    "run under srun or on a Cloud TPU pod, or set JAX_COORDINATOR_ADDRESS="
                    "host:port, JAX_NUM_PROCESSES and JAX_PROCESS_ID") from None
  report_process(jax.process_index())
  return timeout


def _number(environ, var, kind, default=None):
  text = environ.get(var, default)
  try:
    value = kind(text)
    if value >= 0:
      return value
  except (TypeError, ValueError):
    pass
  raise UserError(f"--distributed: {var}={text!r} is not a {kind.__name__} >= 0; set it to "
                  f"{'a number of seconds' if kind is float else 'an integer'} or unset it")


_lost = threading.Lock()


def _peer_lost(cause):
  """One line on stderr and exit at once (other threads may be blocked on the dead peer)."""
  _lost.acquire()  # one line, even if the watchdog and a failed collective both notice
  print(peer_lost_line(cause, jax.process_index()), file=sys.stderr, flush=True)
  os._exit(PEER_LOST_EXIT)  # no Python shutdown: it would wait for the dead peer


def _watch_peers(client, timeout, stop):
  """Each process counts up its alive key every PEER_PING_S; a peer whose count stays put
  for `timeout` seconds (or a coordinator that no longer answers) ends this process."""
  me, last, since = jax.process_index(), {}, {}
  while not stop.wait(PEER_PING_S):
    try:
      client.key_value_increment(f"{_ALIVE}{me}", 1)
      alive = dict(client.key_value_dir_get_bytes(_ALIVE))
      done = {key[len(_DONE):] for key, _ in client.key_value_dir_get_bytes(_DONE)}
    except Exception as err:  # pylint: disable=broad-except  (the coordinator is gone)
      if not stop.is_set():
        _peer_lost(f"the coordinator does not answer: {err}")
      return
    now = time.monotonic()
    for key, count in alive.items():
      peer = key[len(_ALIVE):]
      if count != last.get(peer):
        last[peer], since[peer] = count, now
      elif peer not in done and now - since[peer] > timeout and not stop.is_set():
        _peer_lost(f"process {peer} was silent for {timeout:.0f} s")


@contextlib.contextmanager
def peer_loss_reported(timeout=PEER_TIMEOUT_S):
  """Around a multi-process run: a dead peer ends this process with one line, in bounded time.

  A watchdog thread notices a peer that went silent (killed, preempted, its machine gone)
  within `timeout` seconds; a collective that failed because of it is reported the same way.
  Without this the survivor waits in a collective or in jax.distributed's shutdown barrier
  for minutes, then aborts with pages of coordination errors. A single process: no effect.
  """
  if timeout is None or jax.process_count() == 1:  # None: not --distributed (JAX untouched)
    yield
    return
  from jax._src import distributed  # the coordinator's key-value store (no public handle)
  client, stop = distributed.global_state.client, threading.Event()
  watchdog = threading.Thread(target=_watch_peers, args=(client, timeout, stop), daemon=True)
  watchdog.start()
  try:
    yield
  except jax.errors.JaxRuntimeError as err:
    if any(text in str(err) for text in _PEER_ERRORS):
      _peer_lost(err)
    raise
  client.key_value_set(f"{_DONE}{jax.process_index()}", "1")  # finished: not "silent" later
  stop.set()


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


def epoch_feed(images, labels, batch_size, steps, mesh):
  """feed(order) -> (images, labels, order): one epoch's batches on the mesh, (steps, batch,
  ...) arrays split over the batch axis, each process copying only its own devices' rows.

  The permutation is the one every process computed alike (from the seed and the epoch), so
  the global batches are those of a single process: the same data order at any scale.
  """
  sharding = NamedSharding(mesh, P(None, "data"))

  def feed(order):
    rows = np.asarray(jax.device_get(order))[:steps * batch_size].reshape(steps, batch_size)
    put = lambda a: jax.make_array_from_callback(
        (steps, batch_size, *a.shape[1:]), sharding, lambda index: a[rows[index[:2]]])
    with jax.transfer_guard("allow"):  # the epoch's one intended host->device copy
      return put(images), put(labels), order

  return feed


def stack_seeds(fn, seeds):
  """vmap `fn(key)` over PRNGKey(seed) for each seed: one stacked pytree, leading axis = seed."""
  import jax.numpy as jnp
  keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
  return jax.vmap(fn)(keys)


def stacked(num_seeds):
  """A run of `num_seeds` trains one stacked state (leading seed axis, programs vmapped) when
  it has more than one; a single seed is the plain state, with no seed axis."""
  return num_seeds > 1
