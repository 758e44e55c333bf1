"""A run's training state: TrainState, the optimizer, and (model, state) from a config.

Every random number of a run derives from `TrainState.rng` and the step (dropout:
fold_in(rng, step); data order: fold_in(rng, epoch)), so a checkpoint needs nothing else to
resume exactly.
"""

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

from cnnlab import data, parallel
from cnnlab.compilation import compile_options
from cnnlab.errors import warn
from cnnlab.models import create_model_from_config, registry


class TrainState(train_state.TrainState):
  """Flax's TrainState plus BatchNorm statistics and the run's base random key."""
  batch_stats: Any
  rng: jax.Array


def _adam(opt, lr, wd):
  tx = optax.adam(lr, b1=opt.get("b1", 0.9), b2=opt.get("b2", 0.999), eps=opt.get("eps", 1e-7))
  return optax.chain(optax.add_decayed_weights(wd), tx) if wd else tx


def _adamw(opt, lr, wd):
  return optax.adamw(lr, b1=opt.get("b1", 0.9), b2=opt.get("b2", 0.999),
                     eps=opt.get("eps", 1e-7), weight_decay=wd)


def _sgd(opt, lr, wd):
  return optax.chain(optax.add_decayed_weights(wd),
                     optax.sgd(lr, momentum=opt.get("momentum", 0.9),
                               nesterov=opt.get("nesterov", True)))


def _cosine(opt, total_steps):
  warmup = int(opt.get("warmup_steps", 0))
  return optax.warmup_cosine_decay_schedule(0.0, opt.learning_rate, warmup,
                                            max(total_steps, warmup + 1))


OPTIMIZERS = {"adam": _adam, "adamw": _adamw, "sgd": _sgd}
SCHEDULES = {"constant": lambda opt, total_steps: opt.learning_rate,
             "cosine": _cosine,
             "onecycle": lambda opt, total_steps: optax.cosine_onecycle_schedule(
                 max(total_steps, 1), opt.learning_rate)}


def make_optimizer(opt, total_steps):
  """An Optax optimizer from a config's (checked) `optimizer` block."""
  lr = SCHEDULES[opt.get("schedule", "constant")](opt, total_steps)
  return OPTIMIZERS[opt.get("name", "adam")](opt, lr, opt.get("weight_decay", 0.0))


def create_train_state(model, tx, rng, input_shape, jitted=True):
  """Initialise parameters (and BatchNorm statistics) for inputs of `input_shape` (H, W, C).
  `jitted=False` only inside a trace (jax.eval_shape), where a nested jit takes no options."""

  def create(rng):  # one XLA program, not op by op
    init_rng, state_rng = jax.random.split(rng)
    variables = model.init(init_rng, jnp.zeros((1, *input_shape), jnp.float32), train=False)
    state = TrainState.create(apply_fn=model.apply, params=variables["params"], tx=tx,
                              batch_stats=variables.get("batch_stats", {}), rng=state_rng)
    return state.replace(step=jnp.zeros((), jnp.int32))  # an array, so it never retraces

  return jax.jit(create, compiler_options=compile_options())(rng) if jitted else create(rng)


def num_seeds(config):
  """How many seeds the run trains: 1, or S > 1 trained together (one stacked state)."""
  return config.get("num_seeds", 1)


def model_of(config):
  """The config's Flax model, for its dataset's class count, computing in config.dtype."""
  return create_model_from_config(config.model, data.num_classes(config),
                                  config.get("dtype", "float32"))


def init_images(config):
  """How many of the first training images a fresh run gives `build` (in order, in both input
  modes): 0 unless the config's model sets weights from the data (models.registry.INIT_IMAGES),
  so a run of any other model decodes none of them before training."""
  return registry.init_images(model_of(config))


def warn_slow_dtype(config):
  """One line when bfloat16 runs on CPU, where XLA's bf16 convolutions are very slow."""
  if config.get("dtype", "float32") == "bfloat16" and jax.default_backend() == "cpu":
    warn("cnnlab: warning: config.dtype=bfloat16 is for TPU/GPU: XLA:CPU runs bf16 "
         "convolutions through a slow generic loop; on CPU use it for correctness checks only")


def build(config, steps_per_epoch=1, train_images=None, like=None):
  """(model, initial TrainState) of a (checked) config; also the restore target of its runs.

  `steps_per_epoch` only sets the length of learning-rate schedules, not any array shape.
  `train_images`: a fresh run's training images (at least its first init_images(config)), for a
  model whose first layer is computed from the data (`model.init_from_data`, e.g. speedrun_cnn's
  whitening); other models and a restore target need none.
  `like`: `shapes`' result, whose model and optimizer objects the state shares (they are
  static parts of its pytree), so that a training step compiled from the shapes
  (epochs.precompile_training) is the one this state calls.
  """
  warn_slow_dtype(config)
  parts = {} if like is None else {"model": like.apply_fn.__self__, "tx": like.tx}
  model, state = _initial(config, steps_per_epoch, **parts)
  if train_images is not None and registry.init_images(model):
    state = state.replace(params=model.init_from_data(state.params, train_images))
  return model, state


def shapes(config, steps_per_epoch=1):
  """The initial TrainState with jax.ShapeDtypeStruct leaves: what `build` will return, known
  without computing it (the training step can compile meanwhile: epochs.precompile_training)."""
  return jax.eval_shape(lambda: _initial(config, steps_per_epoch, jitted=False)[1])


def _initial(config, steps_per_epoch, jitted=True, model=None, tx=None):
  model = model_of(config) if model is None else model
  tx = make_optimizer(config.optimizer, config.num_epochs * steps_per_epoch) if tx is None else tx
  create = lambda key: create_train_state(model, tx, key, data.image_shape(config), jitted)
  if parallel.stacked(num_seeds(config)):  # one stacked state: seed, seed+1, ... (vmapped)
    return model, parallel.stack_seeds(create, [config.seed + i for i in range(num_seeds(config))])
  return model, create(jax.random.PRNGKey(config.seed))


def build_fresh(config, steps_per_epoch, train, like=None):
  """build() for a fresh run on its training split `train` ((images, labels) or a source):
  the split's first images are read (decoded, for a source) only if the model needs them."""
  count = init_images(config)
  return build(config, steps_per_epoch, data.first_images(train, count) if count else None,
               like=like)
