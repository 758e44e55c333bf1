"""Convolution tuned for XLA:CPU training (same numbers as nn.Conv), used by layers.Conv
(and, through `flax_conv`, by the models that keep nn.Conv).

Every conv here takes its gradients from `input_grad` and `kernel_grad`: the convolutions
JAX's autodiff builds, written out. JAX 0.7.2 (Colab's TPU runtime) gives its own transposed
convs an `out_sharding` that its vmap rule then refuses (NotImplementedError; jax-ml/jax#32157),
so stacked seeds on a mesh could not train there; the same ops without it train everywhere.

XLA:CPU's forward conv and input gradient are fast, but its kernel gradient for a conv with
one input channel is slow; an im2col matmul split over image chunks is several times faster
there (docs/performance.md has the numbers). The kernel gradient is chosen per platform when
the program is lowered: im2col on CPU, XLA's own everywhere else. (The fast pooling gradient
lives in pooling.pool_nhwc.)
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

DN = ("NHWC", "HWIO", "NHWC")


def lax_conv(x, kernel, strides, pads):
  return lax.conv_general_dilated(x, kernel, strides, pads, dimension_numbers=DN)


def input_grad(g, kernel, x_shape, strides, pads):
  """d(loss)/d(x): g convolved with the flipped kernel, g dilated by the strides (JAX's own)."""
  (kh, kw), (_, h, w, _), (_, ho, wo, _) = kernel.shape[:2], x_shape, g.shape
  t_pads = []
  for size, k, s, out, (lo, _) in zip((h, w), (kh, kw), strides, (ho, wo), pads):
    before = k - lo - 1
    t_pads.append((before, size + k - 1 - ((out - 1) * s + 1) - before))
  return lax.conv_general_dilated(g, lax.rev(kernel, (0, 1)), (1, 1), t_pads,
                                  lhs_dilation=strides, dimension_numbers=("NHWC", "HWOI", "NHWC"))


def kernel_grad(x, g, kernel_shape, strides, pads):
  """d(loss)/d(kernel): x convolved with g over the batch, g dilated by the strides (JAX's own)."""
  (kh, kw), (_, h, w, _), (_, ho, wo, _) = kernel_shape[:2], x.shape, g.shape
  t_pads = [(lo, (out - 1) * s + 1 - size + k - lo - 1)
            for size, k, s, out, (lo, _) in zip((h, w), (kh, kw), strides, (ho, wo), pads)]
  return lax.conv_general_dilated(x, g, (1, 1), t_pads, rhs_dilation=strides,
                                  dimension_numbers=("CHWN", "IHWO", "HWNC"))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv(x, kernel, strides, pads):
  """lax_conv with its gradients from input_grad and kernel_grad (the same numbers)."""
  return lax_conv(x, kernel, strides, pads)


def flax_conv(x, kernel, strides, padding, lhs_dilation=None, rhs_dilation=None,
              dimension_numbers=None, feature_group_count=1, precision=None):
  """`conv` as nn.Conv's `conv_general_dilated=`: its numbers, and stacked seeds that train on
  jax 0.7.2. Dilated, grouped or other-layout convs stay lax's own."""
  plain = (all(d == 1 for d in (lhs_dilation or ()) + (rhs_dilation or ()))
           and feature_group_count == 1 and precision is None and x.ndim == 4
           and dimension_numbers == lax.conv_dimension_numbers(x.shape, kernel.shape, DN))
  if not plain:
    return lax.conv_general_dilated(x, kernel, strides, padding, lhs_dilation, rhs_dilation,
                                    dimension_numbers, feature_group_count, precision=precision)
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(x.shape[1:3], kernel.shape[:2], strides, padding)
  return conv(x, kernel, tuple(strides), tuple(tuple(p) for p in padding))


def _images_per_chunk(n, rows_per_image, min_rows=512):
  """Fewest images whose rows reach `min_rows`: chunks give XLA's dot parallel work."""
  for d in range(1, n + 1):
    if n % d == 0 and d * rows_per_image >= min_rows:
      return d
  return n


def _patches(x, kernel_hw, strides, pads, out_hw):
  """im2col: (N, Ho, Wo, kh*kw*C) in HWIO order, built from strided slices."""
  (kh, kw), (sh, sw), (ho, wo) = kernel_hw, strides, out_hw
  n, _, _, c = x.shape
  xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
  cols = [lax.slice(xp, (0, i, j, 0), (n, i + sh * (ho - 1) + 1, j + sw * (wo - 1) + 1, c),
                    (1, sh, sw, 1)) for i in range(kh) for j in range(kw)]
  return jnp.concatenate(cols, axis=-1)


def kernel_grad_im2col(x, g, kernel_shape, strides, pads):
  """d(loss)/d(kernel) as per-chunk matmuls patches^T @ g, summed over chunks (split-K)."""
  kh, kw, cin, cout = kernel_shape
  n, ho, wo, _ = g.shape
  p = _patches(x, (kh, kw), strides, pads, (ho, wo))
  d = _images_per_chunk(n, ho * wo)
  p = p.reshape(n // d, d * ho * wo, kh * kw * cin)
  gc = g.reshape(n // d, d * ho * wo, cout)
  dk = lax.dot_general(p, gc, (((1,), (1,)), ((0,), (0,)))).sum(0)
  return dk.reshape(kernel_shape)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_small_cin(x, kernel, strides, pads):
  """XLA's conv forward and input gradient; kernel gradient by im2col on CPU (few input channels)."""
  return lax_conv(x, kernel, strides, pads)


def _conv_fwd(x, kernel, strides, pads):
  return lax_conv(x, kernel, strides, pads), (x, kernel)


def _conv_bwd(strides, pads, res, g):
  x, kernel = res
  im2col = lambda x, g: kernel_grad_im2col(x, g, kernel.shape, strides, pads)
  xla = lambda x, g: kernel_grad(x, g, kernel.shape, strides, pads)
  dk = lax.platform_dependent(x, g, cpu=im2col, default=xla)
  return input_grad(g, kernel, x.shape, strides, pads), dk.astype(kernel.dtype)


def _plain_bwd(strides, pads, res, g):
  x, kernel = res
  return input_grad(g, kernel, x.shape, strides, pads), kernel_grad(x, g, kernel.shape, strides,
                                                                   pads)


conv_small_cin.defvjp(_conv_fwd, _conv_bwd)
conv.defvjp(_conv_fwd, _plain_bwd)
