"""cnnlab.parallel in one process, without a cluster: the environment's numbers for
--distributed, the peer watchdog against a fake key-value store (its exit replaced by an
exception), and the single-process paths (mesh, put, the epoch feed, stacked seeds).
The real multi-process runs are tests/test_multiprocess.py (slow)."""

import itertools
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from cnnlab import parallel, supervisor
from cnnlab.errors import UserError


def test_distributed_numbers_come_from_the_environment_and_bad_ones_are_user_errors():
  assert parallel._number({"N": "3"}, "N", int) == 3
  assert parallel._number({"N": "0"}, "N", int) == 0
  assert parallel._number({}, "T", float, 30) == 30.0
  with pytest.raises(UserError) as err:
    parallel._number({"N": "-1"}, "N", int)
  assert str(err.value) == "--distributed: N='-1' is not a int >= 0; set it to an integer or unset it"
  with pytest.raises(UserError) as err:
    parallel._number({"T": "soon"}, "T", float)
  assert str(err.value) == ("--distributed: T='soon' is not a float >= 0; set it to a number of "
                            "seconds or unset it")
  with pytest.raises(UserError, match="T=None is not a float"):
    parallel._number({}, "T", float)


def test_initialize_passes_the_environment_on_and_a_failure_is_one_user_error(monkeypatch):
  seen = {}
  monkeypatch.setattr(jax.config, "update", lambda k, v: seen.update({k: v}))

  def initialize(**kwargs):
    seen.update(kwargs)
    raise RuntimeError("coordinator\n  unreachable")

  monkeypatch.setattr(jax.distributed, "initialize", initialize)
  env = {"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1", "CNNLAB_PEER_TIMEOUT_S": "40"}
  with pytest.raises(UserError) as err:
    parallel.initialize_distributed(env)
  assert seen == {"jax_cpu_collectives_implementation": "gloo", "num_processes": 2,
                  "process_id": 1, "heartbeat_timeout_seconds": 160}
  assert str(err.value) == ("--distributed could not start (coordinator unreachable); run under "
                            "srun or on a Cloud TPU pod, or set JAX_COORDINATOR_ADDRESS=host:port, "
                            "JAX_NUM_PROCESSES and JAX_PROCESS_ID")
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: (_ for _ in ()).throw(
      ValueError("x" * 300)))
  with pytest.raises(UserError) as err:
    parallel.initialize_distributed({})
  assert f"start ({'x' * 200}); run" in str(err.value)  # the cause cut at 200 characters
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: seen.update(kw))
  assert parallel.initialize_distributed({}) == parallel.PEER_TIMEOUT_S == 30
  assert seen["heartbeat_timeout_seconds"] == 120  # 4x the timeout, at least 100
  assert parallel.initialize_distributed({"CNNLAB_PEER_TIMEOUT_S": "1"}) == 1.0
  assert seen["heartbeat_timeout_seconds"] == 100


class FakeStore:
  """The coordinator's key-value store as _watch_peers uses it; `alive` counts per process."""

  def __init__(self, alive, done=(), fail=None):
    self.alive, self.done, self.fail, self.increments = dict(alive), list(done), fail, []

  def key_value_increment(self, key, by):
    if self.fail:
      raise self.fail
    self.increments.append((key, by))
    me = key[len(parallel._ALIVE):]
    self.alive[me] += by

  def key_value_dir_get_bytes(self, prefix):
    if prefix == parallel._ALIVE:
      return [(parallel._ALIVE + k, v) for k, v in self.alive.items()]
    assert prefix == parallel._DONE
    return [(parallel._DONE + k, b"1") for k in self.done]


class Lost(Exception):
  pass


@pytest.fixture
def lost(monkeypatch):
  """_peer_lost's cause, raised instead of printing and exiting; ping every 10 ms."""
  monkeypatch.setattr(parallel, "_peer_lost", lambda cause: (_ for _ in ()).throw(Lost(cause)))
  monkeypatch.setattr(parallel, "PEER_PING_S", 0.01)


class Stop:
  """A threading.Event whose wait() returns False for `rounds` rounds, then True."""

  def __init__(self, rounds):
    self.rounds, self.waits = rounds, set()

  def wait(self, seconds):
    self.waits.add(seconds)
    self.rounds -= 1
    return self.rounds < 0

  def is_set(self):
    return False


def test_a_silent_peer_is_reported_and_a_counting_or_finished_one_is_not(lost, monkeypatch):
  now = itertools.count(0, 10)  # 10 s between rounds
  monkeypatch.setattr(parallel.time, "monotonic", lambda: next(now))
  store = FakeStore({"0": 5, "1": 7})
  with pytest.raises(Lost, match="process 1 was silent for 25 s"):
    parallel._watch_peers(store, 25, Stop(10))  # counts stay put: after 30 s > 25
  assert store.increments[0] == ("cnnlab/alive/0", 1)
  store = FakeStore({"0": 5, "1": 7}, done=["1"])
  parallel._watch_peers(store, 25, Stop(10))  # process 1 finished: not silent
  assert len(store.increments) == 10
  stop = Stop(3)
  parallel._watch_peers(FakeStore({"0": 5, "1": 7}), 20, stop)  # silent 20 s: not > 20 s
  assert stop.waits == {0.01}  # it pings every PEER_PING_S


def test_a_lost_peer_is_one_line_on_stderr_and_exit_75(monkeypatch, capsys):
  monkeypatch.setattr(parallel, "_lost", threading.Lock())  # the real one is taken for good
  monkeypatch.setattr(parallel.os, "_exit", lambda code: (_ for _ in ()).throw(SystemExit(code)))
  with pytest.raises(SystemExit) as exited:
    parallel._peer_lost("process 1 was silent for 30 s")
  assert exited.value.code == 75
  assert capsys.readouterr().err == (
      "cnnlab: error: --distributed: another process of this run stopped (process 1 was silent "
      "for 30 s); process 0 exits too. Resume: run the same command on every process again\n")


def test_xlas_nested_cause_is_said_once():
  """As measured: a peer killed mid-epoch; XLA repeated its prefix once per dispatch level."""
  cause = "INTERNAL: " + "Error dispatching computation: " * 5 + "Gloo connection closed"
  assert supervisor.peer_lost_line(cause, 1) == (
      "cnnlab: error: --distributed: another process of this run stopped (INTERNAL: Error "
      "dispatching computation: Gloo connection closed); process 1 exits too. Resume: run the "
      "same command on every process again")


def test_a_coordinator_that_does_not_answer_ends_the_process(lost):
  with pytest.raises(Lost, match="the coordinator does not answer: gone"):
    parallel._watch_peers(FakeStore({}, fail=ConnectionError("gone")), 30, Stop(2))


def test_one_process_is_primary_and_its_watchdog_does_nothing():
  assert parallel.is_primary() and jax.process_index() == 0
  for timeout in (None, 30):
    with parallel.peer_loss_reported(timeout):
      pass
  assert not parallel.stacked(1) and parallel.stacked(2)


def test_mesh_shardings_put_and_the_epoch_feed_on_one_process():
  mesh = parallel.make_mesh()
  assert mesh.axis_names == ("data",) and mesh.devices.tolist() == jax.devices()
  assert parallel.make_mesh(1).devices.size == 1
  assert parallel.replicated(mesh).spec == P() and parallel.batch_sharded(mesh).spec == P("data")
  tree = {"w": np.arange(4.0)}
  put = parallel.put(tree, parallel.replicated(mesh))
  np.testing.assert_array_equal(put["w"], tree["w"])
  assert isinstance(put["w"], jax.Array)
  images = np.arange(10 * 2 * 2 * 1, dtype=np.uint8).reshape(10, 2, 2, 1)
  labels = np.arange(10, dtype=np.int32) * 3
  order = jnp.array([9, 3, 0, 5, 1, 7, 2, 8, 6, 4])
  x, y, same = parallel.epoch_feed(images, labels, 3, 2, mesh)(order)
  assert x.shape == (2, 3, 2, 2, 1) and same is order
  np.testing.assert_array_equal(y, [[27, 9, 0], [15, 3, 21]])  # the first 6 of the order
  np.testing.assert_array_equal(x, images[[[9, 3, 0], [5, 1, 7]]])


def test_stacked_seeds_are_each_seeds_own_key():
  keys = parallel.stack_seeds(lambda key: key, [0, 7])
  np.testing.assert_array_equal(keys, np.stack([jax.random.PRNGKey(0), jax.random.PRNGKey(7)]))
  draws = parallel.stack_seeds(lambda key: jax.random.normal(key, (2,)), [3, 4])
  np.testing.assert_array_equal(draws[1], jax.random.normal(jax.random.PRNGKey(4), (2,)))
  assert draws.shape == (2, 2)
