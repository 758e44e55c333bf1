"""cnnlab.train.state's numbers: each optimizer and schedule a config names equals optax's,
built by hand with the documented defaults and with every field set; the initial state's
parameters, key and step; stacked seeds seed, seed+1; the bfloat16-on-CPU warning."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from cnnlab.models import fashion_dnn, whitening
from cnnlab.train import state as state_lib
from conftest import smoke_config
from test_step_values import Tiny, close, same

PARAMS = {"w": np.array([0.5, -1.0, 2.0], np.float32), "b": np.array([0.1], np.float32)}
GRADS = [{"w": np.array([1e-6, -3e-6, 2e-6], np.float32) * k,  # NumPy: no JAX call at import
          "b": np.array([4e-6 / k], np.float32)} for k in (1, 7, 2, 5)]


def trajectory(tx, steps=4):
  """The updates of `steps` steps with fixed, small gradients (eps matters), compared
  relatively: an SGD update (~1e-8) is far below any absolute tolerance on the parameters."""
  params, opt_state, out = PARAMS, tx.init(PARAMS), []
  for grads in GRADS[:steps]:
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    out.append(updates)
  return out


def same_optimizer(fields, want, total_steps=10):
  opt = ml_collections.ConfigDict(dict({"learning_rate": 0.01}, **fields))
  got = state_lib.make_optimizer(opt, total_steps)
  # the optimizer state's structure is part of every checkpoint
  assert jax.tree.structure(got.init(PARAMS)) == jax.tree.structure(want.init(PARAMS))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5),
               trajectory(got), trajectory(want))


def sgd(lr, wd=0.0, **kw):  # cnnlab's sgd always chains weight decay (0.0: a no-op step)
  return optax.chain(optax.add_decayed_weights(wd), optax.sgd(lr, **kw))


OPTIMIZERS = [
    ({}, optax.adam(0.01, b1=0.9, b2=0.999, eps=1e-7)),
    ({"name": "adam", "b1": 0.5, "b2": 0.9, "eps": 1e-5, "weight_decay": 0.1},
     optax.chain(optax.add_decayed_weights(0.1), optax.adam(0.01, b1=0.5, b2=0.9, eps=1e-5))),
    ({"name": "adamw", "weight_decay": 0.1},
     optax.adamw(0.01, b1=0.9, b2=0.999, eps=1e-7, weight_decay=0.1)),
    ({"name": "adamw", "b1": 0.5, "b2": 0.9, "eps": 1e-5, "weight_decay": 0.3},
     optax.adamw(0.01, b1=0.5, b2=0.9, eps=1e-5, weight_decay=0.3)),
    ({"name": "sgd"}, sgd(0.01, momentum=0.9, nesterov=True)),
    ({"name": "sgd", "momentum": 0.5, "nesterov": False, "weight_decay": 0.2},
     sgd(0.01, 0.2, momentum=0.5)),
    ({"name": "sgd", "schedule": "cosine", "warmup_steps": 2, "momentum": 0.0},
     sgd(optax.warmup_cosine_decay_schedule(0.0, 0.01, 2, 10), momentum=0.0)),
    ({"name": "sgd", "schedule": "cosine", "momentum": 0.0},
     sgd(optax.warmup_cosine_decay_schedule(0.0, 0.01, 0, 10), momentum=0.0)),
    ({"name": "sgd", "schedule": "onecycle", "momentum": 0.0},
     sgd(optax.cosine_onecycle_schedule(10, 0.01), momentum=0.0)),
    ({"schedule": "constant", "name": "sgd", "momentum": 0.0}, sgd(0.01, momentum=0.0)),
]


@pytest.mark.parametrize("fields, want", OPTIMIZERS, ids=range(len(OPTIMIZERS)))
def test_each_optimizer_and_schedule_equals_optax_with_the_documented_defaults(fields, want):
  same_optimizer(fields, want)


def test_schedules_shorter_than_their_warmup_still_count_at_least_one_step():
  plain = {"name": "sgd", "momentum": 0.0}
  # warmup 2 of 1 step: 3 steps, so the 4-step trajectory's last update (at the end: lr 0)
  # also tells 3 from 4 (state _cosine 24, `warmup + 2`, survived a warmup of 3)
  same_optimizer(dict(plain, schedule="cosine", warmup_steps=2),
                 sgd(optax.warmup_cosine_decay_schedule(0.0, 0.01, 2, 3), momentum=0.0),
                 total_steps=1)
  same_optimizer(dict(plain, schedule="onecycle"),
                 sgd(optax.cosine_onecycle_schedule(1, 0.01), momentum=0.0), total_steps=0)


def test_the_initial_state_is_the_model_init_of_the_first_half_of_the_key():
  key = jax.random.PRNGKey(3)
  state = state_lib.create_train_state(Tiny(), sgd(0.1), key, (2, 2, 1))
  init_key, state_key = jax.random.split(key)
  variables = Tiny().init(init_key, jnp.zeros((1, 2, 2, 1)), train=False)
  jax.tree.map(same, (state.params, state.batch_stats),
               (variables["params"], variables["batch_stats"]))
  same(state.rng, state_key)
  assert state.step.dtype == jnp.int32 and int(state.step) == 0
  jax.tree.map(same, state.opt_state, sgd(0.1).init(state.params))
  eager = state_lib.create_train_state(Tiny(), sgd(0.1), key, (2, 2, 1), jitted=False)
  jax.tree.map(same, eager.params, state.params)


def dnn(**overrides):
  config = smoke_config(**overrides)
  config.model = ml_collections.ConfigDict({"name": "fashion_dnn", "dropout": 0.25})
  return config


def test_build_gives_the_config_model_its_seed_and_stacked_seeds_seed_plus_i():
  config = dnn(seed=5)
  model, state = state_lib.build(config, steps_per_epoch=3)
  assert isinstance(model, fashion_dnn.FashionDNN) and model.num_classes == 10
  assert state_lib.num_seeds(config) == 1 and state_lib.init_images(config) == 0
  want = state_lib.create_train_state(model, state.tx, jax.random.PRNGKey(5), (28, 28, 1))
  jax.tree.map(same, state.params, want.params)
  shapes = state_lib.shapes(config, 3)
  assert jax.tree.map(lambda a: (a.shape, a.dtype), shapes.params) == jax.tree.map(
      lambda a: (a.shape, a.dtype), state.params)
  _, like = state_lib.build(config, 3, like=shapes)
  assert like.tx is shapes.tx and like.apply_fn.__self__ is shapes.apply_fn.__self__
  _, fresh = state_lib.build_fresh(config, 3, (np.zeros((2, 28, 28, 1), np.uint8), [0, 1]),
                                   like=shapes)  # a model that reads no image
  assert fresh.tx is shapes.tx
  jax.tree.map(same, fresh.params, state.params)
  assert state.batch_stats == {}  # no BatchNorm: an empty dict (checkpoints), not None
  cosine = dnn(seed=5)
  cosine.optimizer.schedule = "cosine"  # the schedule spans num_epochs * steps_per_epoch
  want = state_lib.make_optimizer(cosine.optimizer, cosine.num_epochs * 3)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5),
               trajectory(state_lib.build(cosine, 3)[1].tx), trajectory(want))
  _, stacked = state_lib.build(dnn(seed=5, num_seeds=2))
  assert state_lib.num_seeds(dnn(num_seeds=2)) == 2
  assert state_lib.num_seeds(ml_collections.ConfigDict()) == 1  # a config from before seeds
  assert state_lib.model_of(dnn(dtype="bfloat16")).dtype == jnp.bfloat16
  float32 = dnn()
  del float32["dtype"]  # a config from before dtype computes in float32
  assert state_lib.model_of(float32).dtype == jnp.float32
  _, six = state_lib.build(dnn(seed=6))
  for i, one in enumerate((state, six)):
    jax.tree.map(lambda a, b: same(a[i], b), stacked.params, one.params)


def test_bfloat16_on_cpu_warns_once_and_float32_does_not(capsys):
  state_lib.warn_slow_dtype(dnn(dtype="bfloat16"))
  assert capsys.readouterr().err == (
      "cnnlab: warning: config.dtype=bfloat16 is for TPU/GPU: XLA:CPU runs bf16 convolutions "
      "through a slow generic loop; on CPU use it for correctness checks only\n")
  state_lib.warn_slow_dtype(dnn())
  assert capsys.readouterr().err == ""


def test_a_whitening_model_sets_conv1_from_the_first_training_images():
  """Fake data (random pixels): only the arithmetic from images to filters is checked."""
  config = smoke_config()
  config.model = ml_collections.ConfigDict({"name": "speedrun_cnn", "widths": (4, 8),
                                            "hidden": 16, "whiten_eps": 1e-2})
  images = np.random.default_rng(0).integers(0, 256, (40, 28, 28, 1), np.uint8)
  assert state_lib.init_images(config) == whitening.MAX_IMAGES
  kernel, bias = whitening.whitening_filters(images, 4, eps=1e-2)
  _, fresh = state_lib.build_fresh(config, 1, (images, np.zeros(40, np.int32)))
  close(fresh.params["conv1"]["kernel"], kernel)
  close(fresh.params["conv1"]["bias"], bias)
  _, target = state_lib.build(config)  # a restore target reads no images
  assert not np.allclose(target.params["conv1"]["kernel"], kernel)
  jax.tree.map(same, target.params["output"], fresh.params["output"])
