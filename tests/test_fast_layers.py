"""The CPU-tuned layers (layers.Conv, pooling, image_groups) compute what the plain layers do."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnnlab import ops
from cnnlab.models.layers import Conv, Taps, image_groups, in_chunks, relu_max_pool
from cnnlab.models.textbook_cnn import GLOROT, TextbookCNN
from conftest import DATA_DIR, needs_data

PADDINGS = ["SAME", "VALID", ((0, 2), (1, 0)), 1]


def _close(a, b, tol=1e-5):
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


@pytest.mark.parametrize("cin, features", [(1, 16), (1, 5), (8, 16)])  # im2col, lax, lax
@pytest.mark.parametrize("strides", [1, 2])
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.slow
def test_conv_matches_nn_conv(cin, features, strides, padding):
  x = jax.random.normal(jax.random.PRNGKey(1), (4, 9, 10, cin))
  fast = Conv(features, (3, 3), strides=strides, padding=padding)
  ref = nn.Conv(features, (3, 3), strides=strides, padding=padding)
  params = ref.init(jax.random.PRNGKey(0), x)
  fast_params = fast.init(jax.random.PRNGKey(0), x)
  jax.tree.map(_close, fast_params, params)  # same names, shapes and init: checkpoints swap
  _close(fast.apply(params, x), ref.apply(params, x))
  w = jax.random.normal(jax.random.PRNGKey(2), ref.apply(params, x).shape)
  loss = lambda m: lambda p, x: jnp.sum(jnp.sin(m.apply(p, x)) * w)
  g_fast = jax.grad(loss(fast), argnums=(0, 1))(params, x)
  g_ref = jax.grad(loss(ref), argnums=(0, 1))(params, x)
  jax.tree.map(_close, g_fast, g_ref)


def test_max_pool_matches_flax_forward_and_backward():
  x = jax.random.normal(jax.random.PRNGKey(3), (3, 8, 6, 4))  # continuous: no ties
  ref = lambda x: nn.max_pool(x, (2, 2), (2, 2))
  pool = lambda x: ops.pool_nhwc(x, 2)  # tiled: reshape + max, first-maximum gradient
  _close(pool(x), ref(x), 0)
  g = jax.random.normal(jax.random.PRNGKey(4), (3, 4, 3, 4))
  vjp = lambda f: jax.vjp(f, x)[1](g)[0]
  _close(vjp(pool), vjp(ref), 0)


@pytest.mark.slow
def test_ties_after_relu_get_the_same_gradient():
  # ReLU makes ties (windows of zeros). relu_max_pool gives such a window's gradient to its
  # first element like XLA's select_and_scatter, and ReLU's derivative is 0 there anyway,
  # so gradients reaching the conv below are identical; integer inputs force many ties.
  x = jax.random.randint(jax.random.PRNGKey(5), (2, 6, 6, 3), -3, 3).astype(jnp.float32)
  g = jax.random.normal(jax.random.PRNGKey(6), (2, 3, 3, 3))
  ref = lambda x: nn.max_pool(nn.relu(x), (2, 2), (2, 2))
  _close(relu_max_pool(x), ref(x), 0)
  _close(jax.vjp(relu_max_pool, x)[1](g)[0], jax.vjp(ref, x)[1](g)[0], 0)
  # The pool alone also matches flax on ties (first maximum in row-major window order).
  _close(jax.vjp(lambda x: ops.pool_nhwc(x, 2), x)[1](g)[0],
         jax.vjp(lambda x: nn.max_pool(x, (2, 2), (2, 2)), x)[1](g)[0], 0)


class StraightforwardCNN(nn.Module):
  """The textbook CNN written plainly (nn.Conv, relu, flax max_pool): the numeric reference."""

  @nn.compact
  def __call__(self, x, train=False):
    Taps(name="taps")  # same variable tree as TextbookCNN
    conv = functools.partial(nn.Conv, kernel_size=(3, 3), padding="SAME", kernel_init=GLOROT)
    pool = lambda x: nn.max_pool(x, (2, 2), (2, 2))
    x = pool(nn.relu(conv(32, name="conv1")(x)))
    x = pool(nn.relu(conv(64, name="conv2")(x)))
    x = nn.relu(nn.Dense(100, kernel_init=GLOROT, name="dense1")(x.reshape(x.shape[0], -1)))
    x = nn.Dropout(0.4, deterministic=not train)(x)
    return nn.Dense(10, kernel_init=GLOROT, name="output")(x)


def _adam_losses(model, batch, steps=20):
  """Losses of `steps` Adam steps (lr 1e-3, dropout on) on one batch of uint8 images."""
  x = batch["image"].astype(jnp.float32) / 255.0
  params = model.init(jax.random.PRNGKey(0), x[:1])["params"]
  tx = optax.adam(1e-3)

  @jax.jit
  def step(params, opt, rng):
    def loss_fn(p):
      logits = model.apply({"params": p}, x, train=True, rngs={"dropout": rng})
      return optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), opt, loss

  opt, losses = tx.init(params), []
  for i in range(steps):
    params, opt, loss = step(params, opt, jax.random.PRNGKey(i))
    losses.append(float(loss))
  return losses


@pytest.mark.slow
def test_textbook_cnn_trains_like_the_straightforward_model():
  """20 Adam steps on one fixed batch: losses agree to 1e-4 relative (float32 reordering)."""
  rng = np.random.RandomState(0)
  pixels = rng.randint(0, 256, (16, 28, 28, 1)).astype(np.uint8)
  pixels[:, :4] = 0  # Fashion-MNIST-like black border: all-zero windows, ties everywhere
  batch = {"image": jnp.asarray(pixels), "label": jnp.asarray(rng.randint(0, 10, 16), jnp.int32)}
  losses = {name: _adam_losses(model, batch)
            for name, model in (("fast", TextbookCNN()), ("ref", StraightforwardCNN()))}
  assert losses["fast"][-1] < losses["fast"][0] * 0.8  # it learns the batch
  np.testing.assert_allclose(losses["fast"], losses["ref"], rtol=1e-4)


def test_chunked_trunk_equals_recorded_path():
  """Training/inference (conv trunk in groups of 8, ragged last group) = the recording path."""
  model = TextbookCNN()
  x = jax.random.uniform(jax.random.PRNGKey(7), (20, 28, 28, 1))
  variables = model.init(jax.random.PRNGKey(0), x[:1])
  plain, _ = model.apply(variables, x, mutable=["intermediates"])
  _close(model.apply(variables, x), plain, 1e-5)


def test_grouped_trunk_is_traced_once_for_all_groups():
  """16 groups of 8 images call ONE traced trunk: tracing and lowering cost one group, not 16.

  (Unrolled, the batch-128 training step took 0.5-0.6 s to trace and 210 kB of StableHLO;
  with one shared trunk 0.2-0.3 s and 97 kB, and the trained parameters are bit-identical.)
  """
  model = TextbookCNN()
  x = jnp.zeros((128, 28, 28, 1))
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), x[:1])
  jaxpr = jax.make_jaxpr(model.apply)(variables, x).jaxpr
  (choice,) = [e for e in jaxpr.eqns if e.primitive.name == "cond"]  # per platform, at lowering
  cpu = choice.params["branches_platforms"].index(("cpu",))
  calls = [e for e in choice.params["branches"][cpu].jaxpr.eqns
           if e.primitive.name in ("pjit", "jit")]
  assert len(calls) == 16
  assert len({id(e.params["jaxpr"]) for e in calls}) == 1  # the same trace, reused
  assert calls[0].outvars[0].aval.shape == (8, 7, 7, 64)  # one group through conv2 + pool


def _trunk(x, conv1, conv2, tap):
  return tap("pool2", relu_max_pool(conv2(tap("pool1", relu_max_pool(conv1(x))))))


class GroupedTrunk(nn.Module):
  """_trunk through image_groups, or unrolled per group (in_chunks), or plain (groups=1)."""
  groups: int = 8
  unrolled: bool = False

  @nn.compact
  def __call__(self, x):
    layers = Conv(16, (3, 3), name="conv1"), Conv(8, (3, 3), name="conv2"), Taps(name="taps")
    if self.unrolled:
      return in_chunks(lambda x: _trunk(x, *layers), x, max_chunks=self.groups)
    return image_groups(_trunk, layers, x, max_groups=self.groups)


@pytest.mark.slow
def test_image_groups_equal_unrolled_groups_and_the_plain_path():
  """One shared trace = each group written out (bit for bit); = one plain batch (rounding)."""
  x = jax.random.uniform(jax.random.PRNGKey(8), (40, 12, 12, 1))  # 5 groups of 8
  w = jax.random.normal(jax.random.PRNGKey(9), (40, 3, 3, 8))
  variables = GroupedTrunk().init(jax.random.PRNGKey(0), x[:1])
  assert set(variables) == {"params"} and set(variables["params"]) == {"conv1", "conv2"}

  def value_and_grads(model):
    loss = lambda v, x: jnp.sum(jnp.sin(model.apply(v, x)) * w)
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(variables, x)

  grouped = value_and_grads(GroupedTrunk())
  jax.tree.map(lambda a, b: _close(a, b, 0), grouped, value_and_grads(GroupedTrunk(unrolled=True)))
  jax.tree.map(_close, grouped, value_and_grads(GroupedTrunk(groups=1)))
  # Recording taps runs the plain path, so the taps reach the caller (sown inside a group
  # into the immutable collection, they are dropped without error).
  y, state = GroupedTrunk().apply(variables, x, mutable=["intermediates"])
  np.testing.assert_array_equal(state["intermediates"]["taps"]["pool2"][0], y)
  assert state["intermediates"]["taps"]["pool1"][0].shape == (40, 6, 6, 16)
  _close(GroupedTrunk().apply(variables, x), y)


@pytest.mark.slow
def test_speedrun_cnn_in_image_groups_equals_the_plain_model(n=20, shape=(28, 28, 1)):
  # 20 course images: groups of 8, 8 and 4 (image_groups itself is tested on random shapes above)
  """speedrun_cnn's conv trunk in image groups (its BatchNorms on the whole batch after them) =
  the same model with conv_groups=1, in training mode: loss, gradients and the BatchNorm
  statistics, to float32 rounding (1e-5: the groups change only the order of sums)."""
  from cnnlab.models import create_model
  x = jax.random.uniform(jax.random.PRNGKey(3), (n, *shape))
  labels = jax.random.randint(jax.random.PRNGKey(4), (n,), 0, 10)
  grouped, plain = (create_model("speedrun_cnn", widths=(8, 16), hidden=32, conv_groups=g)
                    for g in (8, 1))
  variables = plain.init(jax.random.PRNGKey(0), x[:1])

  def loss_and_grads(model):
    def loss(params):
      logits, new = model.apply({**variables, "params": params}, x, train=True,
                                mutable=["batch_stats"])
      return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(n), labels]), new
    return jax.jit(jax.value_and_grad(loss, has_aux=True))(variables["params"])

  jax.tree.map(_close, loss_and_grads(grouped), loss_and_grads(plain))


def test_frozen_conv_equals_the_conv_forward_and_has_no_kernel_gradient():
  """Conv(freeze_kernel=True): the same output as Conv to the bit; the kernel's gradient is
  exactly zero and the bias's is the plain conv's."""
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 12, 12, 1))
  plain, frozen = Conv(18, (3, 3)), Conv(18, (3, 3), freeze_kernel=True)
  params = plain.init(jax.random.PRNGKey(1), x)
  loss = lambda model: lambda p: jnp.sum(jnp.sin(model.apply(p, x)))
  np.testing.assert_array_equal(frozen.apply(params, x), plain.apply(params, x))
  g_plain, g_frozen = (jax.grad(loss(m))(params)["params"] for m in (plain, frozen))
  assert not np.any(np.asarray(g_frozen["kernel"])) and np.any(np.asarray(g_plain["kernel"]))
  np.testing.assert_array_equal(g_frozen["bias"], g_plain["bias"])


@needs_data
def test_whitening_filters_decorrelate_the_training_patches():
  """Real Fashion-MNIST: with eps 0, the +filters' responses to the 3x3 patches of 1,000 training
  images have identity covariance and (with the bias) zero mean; the -filters mirror them."""
  from cnnlab import data
  from cnnlab.models import whitening
  images = data.load_split("fashion_mnist", "train", DATA_DIR)[0][:1000]
  kernel, bias = whitening.whitening_filters(images, 18, eps=0.0, max_images=1000)
  assert kernel.shape == (3, 3, 1, 18) and bias.shape == (18,)
  np.testing.assert_array_equal(kernel[..., 9:], -kernel[..., :9])
  y = jax.lax.conv_general_dilated(jnp.asarray(images, jnp.float32) / 255.0, kernel, (1, 1),
                                   "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) + bias
  responses = np.asarray(y, np.float64).reshape(-1, 18)[:, :9]
  np.testing.assert_allclose(responses.mean(0), 0.0, atol=1e-5)
  np.testing.assert_allclose(np.cov(responses, rowvar=False), np.eye(9), atol=1e-4)
  mean, cov = whitening.patch_covariance(images, max_images=1000)
  assert mean.shape == (9,) and mean[4] == pytest.approx(images.mean() / 255.0, abs=1e-3)
  with pytest.raises(ValueError, match="even number of filters <= 18"):
    whitening.whitening_filters(images, 17)


def test_speedrun_cnn_whitening_sets_conv1_from_data_for_every_seed_and_keeps_it_frozen():
  """build(config, spe, images): conv1 = whitening_filters(images) in every stacked seed (random
  images: only where the filters come from is tested here); a training step moves conv1's bias
  but not its kernel."""
  import ml_collections
  from cnnlab.models import whitening
  from cnnlab.train import state as state_lib, step as step_lib
  from experiments import speedrun_93
  images = np.asarray(jax.random.randint(jax.random.PRNGKey(5), (64, 28, 28, 1), 0, 256), np.uint8)
  config = speedrun_93.get_config()
  config.num_seeds = 2
  _, state = state_lib.build(config, 10, images)
  kernel, bias = whitening.whitening_filters(images, 18, eps=config.model.whiten_eps)
  for s in range(2):
    np.testing.assert_array_equal(state.params["conv1"]["kernel"][s], kernel)
    np.testing.assert_array_equal(state.params["conv1"]["bias"][s], bias)
  config.num_seeds = 1
  config.model.whiten_bias = True
  _, state = state_lib.build(config, 10, images)
  batch = {"image": images, "label": np.arange(64) % 10}
  new, _ = jax.jit(step_lib.train_step)(state, batch)
  np.testing.assert_array_equal(new.params["conv1"]["kernel"], kernel)
  assert np.any(np.asarray(new.params["conv1"]["bias"]) != bias)
  assert np.any(np.asarray(new.params["conv2"]["kernel"]) != np.asarray(state.params["conv2"]["kernel"]))


def test_a_frozen_whitening_bias_stays_and_spares_conv2_its_input_gradient():
  """whiten_bias=False: conv1 (kernel and bias) never moves while conv2 trains, and the
  training step has one convolution fewer: nothing before conv2 trains, so its input
  gradient (a third of its cost) is not computed."""
  from cnnlab.train import state as state_lib, step as step_lib
  from experiments import speedrun_91
  images = np.asarray(jax.random.randint(jax.random.PRNGKey(5), (32, 28, 28, 1), 0, 256), np.uint8)
  batch = {"image": images, "label": np.arange(32) % 10}
  convs = {}
  for trains in (True, False):
    config = speedrun_91.get_config()
    config.model.update(whiten_bias=trains, conv_groups=1)
    _, state = state_lib.build(config, 10, images)
    step = jax.jit(step_lib.train_step)
    convs[trains] = step.lower(state, batch).as_text().count("stablehlo.convolution")
    new, _ = step(state, batch)
    moved = lambda layer, p: np.any(np.asarray(new.params[layer][p]) != np.asarray(state.params[layer][p]))
    assert moved("conv1", "bias") == trains and not moved("conv1", "kernel")
    assert moved("conv2", "kernel")
  assert convs == {True: 4, False: 3}, convs  # conv1 forward; conv2 forward, kernel grad (+ input grad)


@pytest.mark.parametrize("features", [16, 5])  # conv_small_cin (im2col on CPU), conv
def test_conv_gradients_vmap_over_seeds_placed_on_a_mesh(features):
  """Stacked seeds on a mesh (a train run's state): jax 0.7.2's vmap refused the convs its own
  autodiff builds for a conv's gradients (jax-ml/jax#32157); fast_conv writes them out. Each
  seed's gradients equal its own (vmap groups the convs: last-bit rounding, hence 1e-5)."""
  from cnnlab import parallel
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 9, 10, 1))
  model = Conv(features, (3, 3), strides=2, padding="SAME")
  params = jax.vmap(lambda k: model.init(k, x))(jax.random.split(jax.random.PRNGKey(1)))
  params, x = jax.device_put((params, x), parallel.replicated(parallel.make_mesh(1)))
  grad = jax.grad(lambda p, x: jnp.sum(jnp.sin(model.apply(p, x))), argnums=(0, 1))
  stacked = jax.jit(jax.vmap(grad, in_axes=(0, None)))(params, x)
  for s in range(2):
    single = grad(jax.tree.map(lambda a: a[s], params), x)
    jax.tree.map(lambda a, b: _close(a[s], b), stacked, single)


@pytest.mark.parametrize("strides,padding,dilation", [(1, "SAME", 1), (2, "SAME", 1),
                                                      (2, "VALID", 1), (1, "SAME", 2)])
def test_nn_conv_with_flax_conv_is_nn_conv_and_its_seeds_vmap_on_a_mesh(strides, padding, dilation):
  """resnet_small and inception_mini pass fast_conv.flax_conv to nn.Conv: nn.Conv's values and
  gradients bit for bit, and stacked seeds on a mesh train (jax 0.7.2 refused nn.Conv's: the
  test above). A dilated conv (no model has one) stays lax's: equal, not vmapped here."""
  from cnnlab import parallel
  from cnnlab.models import fast_conv
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 9, 10, 3))
  kw = dict(features=5, kernel_size=(3, 3), strides=strides, padding=padding,
            kernel_dilation=dilation)
  ours, plain = nn.Conv(**kw, conv_general_dilated=fast_conv.flax_conv), nn.Conv(**kw)
  params = jax.vmap(lambda k: plain.init(k, x))(jax.random.split(jax.random.PRNGKey(1)))
  params, x = jax.device_put((params, x), parallel.replicated(parallel.make_mesh(1)))
  grad = lambda model: jax.jit(jax.value_and_grad(
      lambda p, x: jnp.sum(jnp.sin(model.apply(p, x))), argnums=(0, 1)))
  stacked = dilation == 1 and jax.jit(jax.vmap(grad(ours), in_axes=(0, None)))(params, x)
  for s in range(2):
    seed = jax.tree.map(lambda a: a[s], params)
    single = grad(ours)(seed, x)
    jax.tree.map(np.testing.assert_array_equal, single, grad(plain)(seed, x))
    assert np.abs(np.asarray(single[1][0]["params"]["kernel"])).sum() > 1
    if stacked:
      jax.tree.map(lambda a, b: _close(a[s], b), stacked, single)
