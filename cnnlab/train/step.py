"""The pure, jittable pieces of a training step: train_step, eval_step and the epoch sums.

Nothing here touches files, flags or the host: each function maps arrays to arrays, so it
can be jitted once, vmapped over seeds, sharded over devices and tested in isolation.

`num_seeds` is a run's seed count: 1 is a plain state; S > 1 is one stacked state (a leading
seed axis of length S) whose programs are vmapped over that axis (parallel.stacked).
"""

import functools

import jax
import jax.numpy as jnp
import optax

from cnnlab import augment, parallel
from cnnlab.compilation import compile_options

DONATE = (0, 1)  # the state and sums: XLA updates them in place

# Independent random streams of a run, folded into TrainState.rng (the numbers are part of
# every saved run's trajectory: never renumber them).
DROPOUT_STREAM, ORDER_STREAM, AUGMENT_STREAM = 0, 1, 2


def to_float(images):
  """uint8 pixels -> float32 in [0, 1] (the course's `/ 255.0`), done on the device."""
  return images.astype(jnp.float32) / 255.0 if images.dtype == jnp.uint8 else images


def variables(state, params=None):
  v = {"params": state.params if params is None else params}
  if state.batch_stats:
    v["batch_stats"] = state.batch_stats
  return v


def train_step(state, batch, label_smoothing=0.0, skip_nonfinite=False, augment_config=None):
  """One optimizer step on `batch` = {"image", "label"}; returns (state, metrics).

  metrics: mean loss and accuracy of the batch, and `finite` (1.0 if the loss was finite).
  With `skip_nonfinite`, a step with a non-finite loss or update leaves the weights unchanged
  (the step counter still advances, so the data order is unaffected).
  """
  dropout_rng = jax.random.fold_in(jax.random.fold_in(state.rng, DROPOUT_STREAM), state.step)
  images, labels = batch["image"], batch["label"]
  if augment_config:  # on device, keyed by (rng, step): a resume replays the same crops/flips
    aug_rng = jax.random.fold_in(jax.random.fold_in(state.rng, AUGMENT_STREAM), state.step)
    images = augment.augment(aug_rng, images, augment_config)
  images = to_float(images)

  def loss_fn(params):
    logits, updates = state.apply_fn(variables(state, params), images, train=True,
                                     rngs={"dropout": dropout_rng}, mutable=["batch_stats"])
    logits = logits.astype(jnp.float32)  # mixed precision: loss and softmax in float32
    loss = cross_entropy(logits, labels, label_smoothing).mean()
    return loss, (logits, updates)

  (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  new_state = state.apply_gradients(grads=grads,
                                    batch_stats=updates.get("batch_stats", state.batch_stats))
  # A finite loss can still overflow the optimizer state (Adam's g**2 with a huge lr), so the
  # updated state counts too: a step is finite only if nothing it produced is inf/NaN.
  finite = jnp.isfinite(loss) & jnp.all(jnp.asarray([
      jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(
          (new_state.params, new_state.opt_state, new_state.batch_stats))
      if jnp.issubdtype(x.dtype, jnp.inexact)]))
  if skip_nonfinite:
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)
    new_state = new_state.replace(params=keep(new_state.params, state.params),
                                  opt_state=keep(new_state.opt_state, state.opt_state),
                                  batch_stats=keep(new_state.batch_stats, state.batch_stats))
  metrics = {"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels),
             "finite": finite.astype(jnp.float32)}
  return new_state, metrics


def cross_entropy(logits, labels, label_smoothing=0.0):
  if not label_smoothing:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
  return optax.softmax_cross_entropy(logits, targets)


def logits_fn(state, images):
  """Inference logits in float32 (dropout off, BatchNorm running averages)."""
  return state.apply_fn(variables(state), to_float(images), train=False).astype(jnp.float32)


def eval_step(state, batch, flip_tta=False):
  """Summed loss, correct count and example count of a batch; `batch["mask"]` marks padding.

  Sums (not means) so padded batches add up exactly: no test image is dropped or counted twice.
  """
  if flip_tta:  # mean logits of the image and its mirror image
    logits = augment.flip_tta_logits(functools.partial(logits_fn, state), batch["image"])
  else:
    logits = logits_fn(state, batch["image"])
  mask = batch["mask"].astype(jnp.float32)
  loss = cross_entropy(logits, batch["label"])
  correct = (jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32)
  return {"loss": jnp.sum(loss * mask), "correct": jnp.sum(correct * mask),
          "count": jnp.sum(mask)}


def epoch_permutation(rng, epoch, num_examples):
  """The training order of `epoch`: a function of (seed, epoch) only, so resume replays it."""
  return jax.random.permutation(
      jax.random.fold_in(jax.random.fold_in(rng, ORDER_STREAM), epoch), num_examples)


def make_train_batch(batch_size, steps_per_epoch, num_seeds=1, batch_sharding=None,
                     prebatched=False, **step_kwargs):
  """A jitted step that gathers its own batch on device: (state, sums, data) -> (state, sums).

  `data` = (images, labels, permutation), all device arrays; the batch index is derived from
  `state.step`, so the loop passes nothing from the host and never waits for the device.
  `num_seeds` > 1 vmaps it over a stacked state (one model per seed, shared data);
  `batch_sharding` splits each batch over devices (data parallel). `prebatched`: the images
  and labels are the epoch's batches in order, (steps, batch, ...), fed per epoch
  (multi-process).
  """
  step = functools.partial(train_step, **step_kwargs)

  def train_batch(state, sums, images, labels, order):
    if prebatched:
      pick = lambda a: jax.lax.dynamic_index_in_dim(a, state.step % steps_per_epoch, 0, False)
      batch = {"image": pick(images), "label": pick(labels)}
    else:
      start = (state.step % steps_per_epoch) * batch_size
      idx = jax.lax.dynamic_slice_in_dim(order, start, batch_size)
      batch = {"image": images[idx], "label": labels[idx]}
    if batch_sharding is not None:
      batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
    state, m = step(state, batch)
    n = jnp.float32(batch_size)
    nonfinite_step = jnp.where(m["finite"] > 0, sums["first_nonfinite_step"],
                               jnp.minimum(sums["first_nonfinite_step"], state.step - 1))
    return state, {"loss": sums["loss"] + jnp.where(m["finite"] > 0, m["loss"] * n, 0.0),
                   "correct": sums["correct"] + m["accuracy"] * n,
                   "count": sums["count"] + n,
                   "nonfinite": sums["nonfinite"] + 1.0 - m["finite"],
                   "first_nonfinite_step": nonfinite_step}

  if parallel.stacked(num_seeds):
    train_batch = jax.vmap(train_batch, in_axes=(0, 0, None, None, 0))
  return jax.jit(train_batch, donate_argnums=DONATE, compiler_options=compile_options())


def _zero_sums():
  z = lambda: jnp.zeros((), jnp.float32)  # distinct buffers: the sums are donated
  return {"loss": z(), "correct": z(), "count": z(), "nonfinite": z(),
          "first_nonfinite_step": jnp.asarray(jnp.iinfo(jnp.int32).max, jnp.int32)}


def per_seed(fn, num_seeds):
  """`fn` (() -> scalars) with a seed axis of length num_seeds when the state is stacked."""
  return (lambda: jax.tree.map(lambda x: jnp.broadcast_to(x, (num_seeds,)), fn())
          ) if parallel.stacked(num_seeds) else fn


@functools.lru_cache(maxsize=None)
def zero_sums_fn(num_seeds=1):
  """Fresh training sums, made on the device (no host transfer: allowed under the guard)."""
  return jax.jit(per_seed(_zero_sums, num_seeds))


def zero_sums(num_seeds=1):
  return zero_sums_fn(num_seeds)()


def make_epoch_order(steps_per_epoch, num_examples, num_seeds=1):
  """jit((step, rng) -> the permutation of the epoch holding `step`), vmapped over seeds."""
  def epoch_order(step, rng):  # from (rng, epoch) alone, so a resume replays it
    return epoch_permutation(rng, step // steps_per_epoch, num_examples)
  return jax.jit(jax.vmap(epoch_order) if parallel.stacked(num_seeds) else epoch_order)
