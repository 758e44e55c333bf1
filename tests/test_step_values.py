"""cnnlab.train.step's numbers on a tiny model (BatchNorm, dropout, one Dense; 2x2 images):
one step equals the optimizer's update by hand, with dropout keyed by fold_in(rng, step),
label smoothing and augmentation in the loss; a non-finite step is counted and, if asked,
skipped; the epoch step gathers the batch of its step; eval sums count only real images."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnnlab import augment
from cnnlab.train import epochs
from cnnlab.train import state as state_lib
from cnnlab.train import step as step_lib

IMAGES = np.array([[7, 200], [90, 33], [250, 1], [128, 64], [3, 77], [180, 45], [66, 99],
                   [12, 240]], np.uint8).repeat(2, 0).reshape(8, 2, 2, 1)  # NumPy at import
LABELS = np.array([0, 2, 1, 1, 0, 2, 2, 0], np.int32)
same = np.testing.assert_array_equal
close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


class Tiny(nn.Module):
  @nn.compact
  def __call__(self, x, train=False):
    x = nn.BatchNorm(use_running_average=not train, momentum=0.5)(x.reshape(x.shape[0], -1))
    x = nn.Dropout(0.5, deterministic=not train)(x)
    return nn.Dense(3)(x).astype(jnp.bfloat16)  # the step computes its loss in float32


def tiny_state(tx=None, step=0):
  state = state_lib.create_train_state(Tiny(), tx or optax.sgd(0.3), jax.random.PRNGKey(4),
                                       (2, 2, 1))
  return state.replace(step=jnp.int32(step))


def by_hand(state, images, labels, eps=0.0, stream=step_lib.DROPOUT_STREAM):
  """The step written out: dropout keyed by fold_in(fold_in(rng, 0), step), the smoothed
  cross-entropy by its formula, the optimizer's update applied with optax directly."""
  rng = jax.random.fold_in(jax.random.fold_in(state.rng, stream), state.step)
  x = jnp.asarray(images, jnp.float32) / 255

  def loss_fn(params):
    logits, upd = Tiny().apply({"params": params, "batch_stats": state.batch_stats}, x,
                               train=True, rngs={"dropout": rng}, mutable=["batch_stats"])
    logits = logits.astype(jnp.float32)
    target = (1 - eps) * jax.nn.one_hot(labels, 3) + eps / 3
    return -(target * jax.nn.log_softmax(logits)).sum(-1).mean(), (logits, upd)

  (loss, (logits, upd)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
  return (optax.apply_updates(state.params, updates), opt_state, upd["batch_stats"], loss,
          jnp.mean(jnp.argmax(logits, -1) == labels))


@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_one_step_equals_the_optimizer_update_by_hand_with_dropout_keyed_by_the_step(eps):
  state = tiny_state(optax.adam(0.1), step=3)
  batch = {"image": IMAGES[:4], "label": LABELS[:4]}
  new, m = jax.jit(step_lib.train_step, static_argnums=2)(state, batch, eps)
  params, opt_state, stats, loss, acc = by_hand(state, IMAGES[:4], LABELS[:4], eps)
  jax.tree.map(close, (new.params, new.opt_state, new.batch_stats), (params, opt_state, stats))
  close(m["loss"], loss)
  assert float(m["accuracy"]) == float(acc) and float(m["finite"]) == 1.0
  assert int(new.step) == 4
  same(new.rng, state.rng)
  # a different step draws a different dropout mask (so the key really depends on it)
  other = by_hand(state.replace(step=jnp.int32(4)), IMAGES[:4], LABELS[:4], eps)
  assert abs(float(other[3]) - float(loss)) > 1e-3


def test_augmentation_draws_its_own_stream_keyed_by_the_step():
  state = tiny_state(step=5)
  cfg = {"flip": True, "crop_padding": 1}
  _, m = jax.jit(lambda s, b: step_lib.train_step(s, b, augment_config=cfg))(
      state, {"image": IMAGES, "label": LABELS})
  key = jax.random.fold_in(jax.random.fold_in(state.rng, step_lib.AUGMENT_STREAM), 5)
  images = augment.augment(key, jnp.asarray(IMAGES), cfg)
  assert not np.array_equal(images, IMAGES)  # the crops and flips change this batch
  close(m["loss"], by_hand(state, images, LABELS)[3])


def test_a_nonfinite_loss_or_update_is_flagged_and_skipped_only_when_asked():
  state = tiny_state()
  bad = {"image": IMAGES[:4].astype(np.float32), "label": LABELS[:4]}
  bad["image"][1, 0, 0, 0] = np.nan  # a float image goes in unscaled
  step = jax.jit(step_lib.train_step, static_argnums=(2, 3))
  kept, m = step(state, bad, 0.0, True)
  assert float(m["finite"]) == 0.0 and int(kept.step) == 1
  jax.tree.map(same, (kept.params, kept.opt_state, kept.batch_stats),
               (state.params, state.opt_state, state.batch_stats))
  broken, m = jax.jit(step_lib.train_step)(state, bad)  # by default a bad step is applied
  assert float(m["finite"]) == 0.0
  assert np.isnan(np.asarray(broken.params["Dense_0"]["kernel"])).all()
  # a finite loss whose update overflows float32 (a learning rate beyond its range) is not
  # a finite step either
  huge = tiny_state(optax.sgd(1e39))
  _, m = step(huge, {"image": IMAGES[:4], "label": LABELS[:4]}, 0.0, True)
  assert np.isfinite(float(m["loss"])) and float(m["finite"]) == 0.0


def test_cross_entropy_and_pixels():
  logits = jnp.array([[1.0, 2.0, 0.5]])
  close(step_lib.cross_entropy(logits, jnp.array([1])), -jax.nn.log_softmax(logits)[:, 1])
  close(step_lib.to_float(np.array([0, 51, 255], np.uint8)), [0.0, 0.2, 1.0])
  assert step_lib.to_float(np.array([0, 51, 255], np.uint8)).dtype == jnp.float32
  floats = jnp.array([0.5, 3.0])
  assert step_lib.to_float(floats) is floats  # float images are used as given
  assert step_lib.variables(tiny_state()).keys() == {"params", "batch_stats"}
  no_stats = tiny_state().replace(batch_stats={})
  assert step_lib.variables(no_stats, {"w": 1}) == {"params": {"w": 1}}


def test_eval_step_sums_loss_and_correct_over_the_real_images_in_inference_mode():
  state = tiny_state()
  state = state.replace(batch_stats=jax.tree.map(lambda a: a + 0.5, state.batch_stats))
  mask = np.array([1, 1, 0, 1, 1, 0, 0, 1], bool)
  got = step_lib.eval_step(state, {"image": IMAGES, "label": LABELS, "mask": mask})
  # inference: running averages, no dropout, float32 logits of pixels / 255
  logits = Tiny().apply({"params": state.params, "batch_stats": state.batch_stats},
                        IMAGES / np.float32(255)).astype(jnp.float32)
  close(step_lib.logits_fn(state, IMAGES), logits)
  assert step_lib.logits_fn(state, IMAGES).dtype == jnp.float32
  ce = np.asarray(-jax.nn.log_softmax(logits)[np.arange(8), LABELS])
  hit = np.asarray(jnp.argmax(logits, -1) == LABELS)
  assert hit[mask].sum() != hit.sum() or ce[mask].sum() != ce.sum()
  close(got["loss"], ce[mask].sum())
  assert float(got["correct"]) == hit[mask].sum() and float(got["count"]) == 5.0
  flipped = step_lib.eval_step(state, {"image": IMAGES, "label": LABELS, "mask": mask}, True)
  tta = (logits + step_lib.logits_fn(state, IMAGES[:, :, ::-1])) / 2
  close(flipped["loss"], np.asarray(-jax.nn.log_softmax(tta)[np.arange(8), LABELS])[mask].sum())


def test_the_epoch_step_gathers_the_batch_of_its_step_and_sums_the_epoch():
  # the epoch step donates its state and sums: every reference is computed before the call
  state, sums = tiny_state(step=3), step_lib.zero_sums()
  order = jnp.array([5, 1, 7, 0, 2, 6, 3, 4])
  images, labels = jnp.asarray(IMAGES), jnp.asarray(LABELS)
  one_device = jax.sharding.SingleDeviceSharding(jax.devices()[0])  # the batch constraint
  train_batch = step_lib.make_train_batch(2, 4, batch_sharding=one_device)
  want, first = step_lib.train_step(state, {"image": IMAGES[[3, 4]], "label": LABELS[[3, 4]]})
  s1, sums = train_batch(state, sums, images, labels, order)  # step 3 of 4: order[6:8]
  jax.tree.map(close, s1.params, want.params)
  second = step_lib.train_step(s1, {"image": IMAGES[[5, 1]], "label": LABELS[[5, 1]]})[1]
  _, sums = train_batch(s1, sums, images, labels, order)  # step 4: order[0:2]
  close(sums["loss"], 2 * (first["loss"] + second["loss"]))
  close(sums["correct"], 2 * (first["accuracy"] + second["accuracy"]))
  assert float(sums["count"]) == 4.0 and float(sums["nonfinite"]) == 0.0
  assert int(sums["first_nonfinite_step"]) == np.iinfo(np.int32).max
  # prebatched: the epoch's batches in order, (steps, batch, ...)
  state = tiny_state(step=3)
  want = step_lib.train_step(state, {"image": IMAGES[6:8], "label": LABELS[6:8]})[0]
  pre = step_lib.make_train_batch(2, 4, prebatched=True)
  p1, _ = pre(state, step_lib.zero_sums(), images.reshape(4, 2, 2, 2, 1),
              labels.reshape(4, 2), order)
  jax.tree.map(close, p1.params, want.params)


def test_the_epoch_sums_count_nonfinite_steps_and_keep_their_loss_out():
  images = jnp.asarray(IMAGES, jnp.float32).at[2].set(jnp.nan)
  batch = lambda i: {"image": images[2 * i:2 * i + 2], "label": LABELS[2 * i:2 * i + 2]}
  train_batch = step_lib.make_train_batch(2, 4, skip_nonfinite=True)
  state, sums, losses = tiny_state(step=1), step_lib.zero_sums(), []
  for _ in range(3):  # steps 1 (a nan image), 2 and 3; references before the donating call
    want, m = step_lib.train_step(state, batch(int(state.step)), skip_nonfinite=True)
    losses.append(float(m["loss"]))
    state, sums = train_batch(state, sums, images, jnp.asarray(LABELS), jnp.arange(8))
    jax.tree.map(close, state.params, want.params)
  assert np.isnan(losses[0]) and float(sums["nonfinite"]) == 1.0
  assert int(sums["first_nonfinite_step"]) == 1 and float(sums["count"]) == 6.0
  close(sums["loss"], 2 * (losses[1] + losses[2]))
  # the epoch's train loss: the mean over the 4 images of the 2 finite steps (was / 5)
  record = epochs.epoch_record(1, 4, jax.device_get(sums), {"loss": 0.0, "accuracy": 0.0}, 2)
  close(record["train_loss"], (losses[1] + losses[2]) / 2)


def test_two_stacked_seeds_each_take_their_own_step():
  from cnnlab import parallel
  states = parallel.stack_seeds(
      lambda key: state_lib.create_train_state(Tiny(), optax.sgd(0.3), key, (2, 2, 1)), [1, 2])
  train_batch = step_lib.make_train_batch(4, 2, num_seeds=2)
  order = jnp.stack([jnp.arange(8), jnp.arange(8)[::-1]])
  wants = [step_lib.train_step(jax.tree.map(lambda a: a[i], states),
                                {"image": IMAGES[idx], "label": LABELS[idx]})
           for i, idx in enumerate(([0, 1, 2, 3], [7, 6, 5, 4]))]
  out, sums = train_batch(states, step_lib.zero_sums(2), jnp.asarray(IMAGES),
                          jnp.asarray(LABELS), order)  # donates states
  assert sums["count"].shape == (2,)
  for i, (want, m) in enumerate(wants):
    jax.tree.map(close, jax.tree.map(lambda a: a[i], out.params), want.params)
    close(sums["loss"][i], 4 * m["loss"])


def test_the_epoch_order_is_a_function_of_seed_and_epoch_only():
  rng = jax.random.PRNGKey(9)
  perm = step_lib.epoch_permutation(rng, 2, 10)
  key = jax.random.fold_in(jax.random.fold_in(rng, step_lib.ORDER_STREAM), 2)
  same(perm, jax.random.permutation(key, 10))
  order = step_lib.make_epoch_order(5, 10)
  same(order(jnp.int32(10), rng), perm)  # steps 10-14 are epoch 2
  same(order(jnp.int32(14), rng), perm)
  assert not np.array_equal(order(jnp.int32(15), rng), perm)
  rngs = jax.random.split(rng, 2)
  stacked = step_lib.make_epoch_order(5, 10, num_seeds=2)(jnp.array([10, 3]), rngs)
  same(stacked[1], step_lib.epoch_permutation(rngs[1], 0, 10))
  assert (step_lib.DROPOUT_STREAM, step_lib.ORDER_STREAM, step_lib.AUGMENT_STREAM) == (0, 1, 2)
  zeros = step_lib.zero_sums(3)
  assert {k: v.shape for k, v in zeros.items()} == dict.fromkeys(zeros, (3,))
  assert not np.any(zeros["loss"]) and zeros["first_nonfinite_step"].dtype == jnp.int32
