"""What every cnnlab model shares: named taps on layer outputs and the CPU-fast layers.

Convention: a model creates `tap = Taps(name="taps")` and records every layer's output with
`x = tap("conv1", x)` in forward order; a layer with parameters carries the same name. Linen
reserves a submodule's name in every collection, so the outputs live in the child scope
"taps" (intermediates/taps/conv1) and can share their layer's name. Read them with
`layer_outputs`, which keeps forward order: summaries, feature maps and shape checks then
work for any model without special cases.

The fast layers choose their path per platform when the program is lowered
(`jax.lax.platform_dependent`), so a model body is written once, plainly, and one traced
program serves CPU, GPU and TPU: `Conv` (a drop-in for nn.Conv),
`max_pool`/`avg_pool`/`relu_max_pool` (pooling.pool_nhwc, the one pooling implementation) and
`image_groups`, which runs a per-image sub-network in groups of images on CPU. The speed-ups
they buy on CPU are measured in docs/performance.md.
"""

import functools
from typing import Any, Callable, Sequence, Union

import flax.linen as nn
import jax

from cnnlab import ops, pooling
from cnnlab.models import fast_conv


class Taps(nn.Module):
  """Records layer outputs under their layer names (a child scope: no name clashes)."""

  def __call__(self, layer, x):
    self.sow("intermediates", layer, x)
    return x


def layer_outputs(model, variables, x):
  """(logits, {layer name: output}) in forward order, inference mode.

  Given jax.ShapeDtypeStructs (e.g. from jax.eval_shape(model.init, ...)) it returns shapes
  without computing anything. The order is read while tracing, since pytrees sort dict keys.
  """
  order = []

  def run(variables, x):
    logits, state = model.apply(variables, x, train=False, mutable=["intermediates"])
    taps = state["intermediates"]["taps"]
    order.extend(taps)  # insertion (= forward) order, before any pytree sorting
    return logits, {k: v[0] for k, v in taps.items()}

  abstract = any(isinstance(a, jax.ShapeDtypeStruct) for a in jax.tree.leaves((variables, x)))
  logits, outputs = jax.eval_shape(run, variables, x) if abstract else run(variables, x)
  return logits, {k: outputs[k] for k in order}


class Conv(nn.Module):
  """Drop-in for nn.Conv (same 'kernel' HWIO and 'bias' params and init), faster on CPU.

  A conv with few input channels and at least as many filters as patch values
  (kh*kw*C_in <= min(64, features), e.g. the textbook CNN's 3x3 grey conv1 with 32 filters)
  takes its kernel gradient from an im2col matmul on CPU (fast_conv.py); with fewer filters,
  building the patches costs more than it saves. Every other case, and every other
  platform, is plain lax.conv_general_dilated. Padding forms are nn.Conv's, resolved by
  ops.resolve_padding. `dtype` casts inputs and parameters for the computation (bfloat16
  activations, float32 parameters), as nn.Conv does.
  """
  features: int
  kernel_size: Sequence[int] = (3, 3)
  strides: Union[int, Sequence[int]] = 1
  padding: Any = "SAME"
  use_bias: bool = True
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros_init()
  dtype: Any = None  # computation dtype (None: the inputs'); parameters stay float32
  freeze_kernel: bool = False  # no gradient for the kernel (filters set from data: whitening)
  freeze_bias: bool = False  # no gradient for the bias either: nothing before this layer trains

  @nn.compact
  def __call__(self, x):
    kh, kw = self.kernel_size
    strides = (self.strides,) * 2 if isinstance(self.strides, int) else tuple(self.strides)
    kernel = self.param("kernel", self.kernel_init, (kh, kw, x.shape[-1], self.features))
    if self.freeze_kernel:  # its gradient is zero, so XLA never computes it
      kernel = jax.lax.stop_gradient(kernel)
    bias = self.param("bias", self.bias_init, (self.features,)) if self.use_bias else None
    if self.freeze_bias and bias is not None:
      bias = jax.lax.stop_gradient(bias)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    pads = ops.resolve_padding(self.padding, x.shape[1:3], (kh, kw), strides)
    depth = kh * kw * x.shape[-1]
    small = depth <= min(64, self.features)  # fast_conv picks the gradient per platform
    conv = fast_conv.conv_small_cin if small else fast_conv.conv
    y = conv(x, kernel, strides, pads)
    return y if bias is None else y + bias


def max_pool(x, window=2, stride=None, padding="VALID"):
  """Max pooling of an NHWC batch (pooling.pool_nhwc: fast gradients on CPU, same numbers)."""
  return _pool(x, window, stride, padding, "max")


def avg_pool(x, window=2, stride=None, padding="VALID"):
  """Average pooling of an NHWC batch; padded pixels are not counted (pooling.pool_nhwc)."""
  return _pool(x, window, stride, padding, "avg")


def relu_max_pool(x, window=2, stride=None):
  """max_pool(relu(x)) computed as relu(max_pool(x)): the same numbers, a quarter the ReLU work.

  ReLU is monotone, so the max commutes with it; so does the gradient (a window whose maximum
  is <= 0 gets zero gradient either way, and otherwise the same first maximum gets it). A
  model that records the ReLU output applies `tap(name, nn.relu(y))` beside it: outside
  recording the tap is unused and XLA drops it.
  """
  return nn.relu(max_pool(x, window, stride))


def activation_pool(y, activation, kind="max", window=2):
  """pool(activation(y)) for a pooling kind "max"/"avg"; ReLU + max runs as relu_max_pool
  (the same numbers, less work)."""
  if activation is nn.relu and kind == "max":
    return relu_max_pool(y, window)
  return _pool(activation(y), window, None, "VALID", kind)


def _pool(x, window, stride, padding, kind):
  win, strides = pooling.window_and_strides(window, stride)
  pads = ops.resolve_padding(padding, x.shape[1:3], win, strides)
  return pooling.pool_nhwc(x, win, strides, kind, pads)


def image_groups(fn, layers, x, max_groups=8):
  """fn(x, *layers) for a per-image sub-network, run on CPU in groups of images: same numbers.

  `layers` are the (bound) submodules `fn` calls, e.g. convs and a Taps; `fn` must treat each
  image on its own (convs, pools, activations; no BatchNorm, dropout or mutable state). On
  CPU each group's activations and gradients stay in cache (`in_chunks` sizes the groups).
  The layers are cloned unbound and their variables passed explicitly to ONE jitted function
  that every group calls, so JAX traces, differentiates and lowers the sub-network once, not
  once per group. Other platforms run fn on the whole batch (chosen when the program is
  lowered), as do max_groups <= 1, initialization (the layers create their parameters in
  place) and recording layer outputs (a mutable "intermediates" collection: taps must reach
  the caller).
  """
  probe = layers[0]
  if max_groups <= 1 or probe.is_initializing() or probe.is_mutable_collection("intermediates"):
    return fn(x, *layers)
  unbound = tuple(layer.clone(parent=None) for layer in layers)
  variables = tuple(layer.variables for layer in layers)

  def whole(variables, x):
    return fn(x, *(layer.bind(v) for layer, v in zip(unbound, variables)))

  group = jax.jit(whole)
  grouped = lambda variables, x: _chunked(functools.partial(group, variables), x, 8, max_groups)
  return jax.lax.platform_dependent(variables, x, cpu=grouped, default=whole)


def in_chunks(fn, x, chunk=8, max_chunks=8):
  """fn(x) applied to groups of >= `chunk` images on CPU and concatenated: the same numbers.

  For per-image layers (convs, pools; not BatchNorm); models use it through `image_groups`.
  Groups are at least `chunk` images and at most `max_chunks`: each group is a copy of fn in
  the program unless fn is one jitted function, and compile time grows with the copies.
  Other platforms get fn(x) unchanged (chosen when the program is lowered).
  """
  return jax.lax.platform_dependent(
      x, cpu=lambda x: _chunked(fn, x, chunk, max_chunks), default=fn)


def _chunked(fn, x, chunk, max_chunks):
  n = x.shape[0]
  chunk = max(chunk, -(-n // max_chunks))
  if n <= chunk:
    return fn(x)
  return jax.numpy.concatenate([fn(x[i:i + chunk]) for i in range(0, n, chunk)])
