"""cnnlab.train.evaluate's numbers on a tiny model: padded batches cover every image once,
evaluate's means equal the loss and accuracy by hand (one seed and two stacked), flip TTA
reaches the logits, probabilities are batched softmaxes, and a background compile's error is
raised by join."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnlab import parallel
from cnnlab.train import evaluate as ev
from cnnlab.train import state as state_lib
from cnnlab.train import step as step_lib
from test_step_values import IMAGES, LABELS, Tiny, close, same, tiny_state
from test_train import _compile_log

X, Y = IMAGES[:7], LABELS[:7]  # not a multiple of the batch size 3


def by_hand(state, images=X, labels=Y, flip=False):
  logits = step_lib.logits_fn(state, images)
  if flip:
    logits = (logits + step_lib.logits_fn(state, images[:, :, ::-1])) / 2
  ce = -jax.nn.log_softmax(logits)[np.arange(len(labels)), labels]
  return float(ce.mean()), float(np.mean(np.asarray(jnp.argmax(logits, -1)) == labels))


def test_eval_batches_pad_the_last_batch_and_mask_it():
  batches = ev.eval_batches(X, Y, 3)
  assert len(batches) == 3 and all(b["image"].shape == (3, 2, 2, 1) for b in batches)
  same(np.concatenate([b["mask"] for b in batches]), [1] * 7 + [0, 0])
  same(np.concatenate([b["image"] for b in batches])[:7], X)
  same(np.concatenate([b["label"] for b in batches]), np.r_[Y, 0, 0])
  assert not np.any(batches[-1]["image"][1:]) and batches[-1]["label"].dtype == Y.dtype
  assert len(ev.eval_batches(X[:6], Y[:6], 3)) == 2  # nothing to pad: no extra batch
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  put = ev.eval_batches(X, Y, 4, sharding=device)
  assert put[1]["image"].sharding == device and put[1]["mask"].tolist() == [1, 1, 1, 0]


def test_evaluate_gives_the_mean_loss_and_accuracy_of_every_real_image():
  state = tiny_state()
  got = ev.evaluate(state, ev.eval_batches(X, Y, 3))
  loss, acc = by_hand(state)
  assert type(got["loss"]) is float and got["loss"] == pytest.approx(loss, rel=1e-6)
  assert got["accuracy"] == pytest.approx(acc, abs=1e-7) and 0 < acc < 1
  flip = ev.evaluate(state, ev.eval_batches(X, Y, 3), flip_tta=True)
  assert flip["loss"] == pytest.approx(by_hand(state, flip=True)[0], rel=1e-6)
  assert flip["loss"] != pytest.approx(loss, rel=1e-4)
  # a step that is a plain int (not a device array): zeros made by the cached program
  plain = ev.evaluate(state.replace(step=0), ev.eval_batches(X, Y, 3))
  assert plain["loss"] == pytest.approx(loss, rel=1e-6)


def test_two_stacked_seeds_are_evaluated_each_on_its_own():
  states = parallel.stack_seeds(lambda key: state_lib.create_train_state(
      Tiny(), tiny_state().tx, key, (2, 2, 1)), [1, 2])
  got = ev.evaluate(states, ev.eval_batches(X, Y, 3), num_seeds=2)
  assert got["loss"].dtype == np.float64 and got["loss"].shape == (2,)
  for i in range(2):
    loss, acc = by_hand(jax.tree.map(lambda a: a[i], states))
    assert got["loss"][i] == pytest.approx(loss, rel=1e-6)
    assert got["accuracy"][i] == pytest.approx(acc, abs=1e-7)
  assert got["loss"][0] != got["loss"][1]


def test_eval_sums_start_at_zero_where_the_state_lives():
  state = tiny_state()
  _, sums = ev._eval_program(state, 1, False)
  assert sums.keys() == {"loss", "correct", "count"}
  assert all(float(v) == 0.0 and v.sharding == state.step.sharding for v in sums.values())
  _, stacked = ev._eval_program(state.replace(step=0), 2, False)
  assert all(v.shape == (2,) and not np.any(v) for v in stacked.values())


def test_probabilities_are_the_softmax_of_the_inference_logits_in_batches():
  state = tiny_state()
  got = ev.probabilities(state, X, batch_size=3)
  close(got, jax.nn.softmax(step_lib.logits_fn(state, X)))
  assert got.shape == (7, 3) and isinstance(got, np.ndarray)
  empty = ev.probabilities(state, X[:0])
  assert empty.shape == (0, 0) and empty.dtype == np.float32


def test_a_background_compile_raises_its_error_on_join():
  thread = ev.precompile(jax.jit(lambda x: x.reshape(3)), jnp.ones(4))
  with pytest.raises(TypeError, match="reshape"):
    thread.join()
  state, batches = tiny_state(), ev.eval_batches(X, Y, 5)  # a batch size no other test uses
  ok = ev.precompile_evaluation(state, batches)
  ok.join()
  assert ok.error is None and not ok.is_alive() and ok.daemon
  got, compiles = _compile_log(ev.evaluate, state, batches)  # the program compiled above
  assert not compiles, compiles
  assert got["loss"] == pytest.approx(by_hand(state)[0], rel=1e-6)
