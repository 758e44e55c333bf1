"""ops' public surface beyond conv2d/pool: the 1D/3D and pooling wrappers pass every argument
on (defaults included), and every refusal says the whole sentence: the problem and the fix.
tests/test_ops.py checks the numbers of conv2d and pool themselves. Tiny arrays: fast."""

import numpy as np
import pytest

from cnnlab import ops
from cnnlab.errors import UserError

I4 = np.arange(16.0).reshape(4, 4)
I3, O2 = np.arange(9.0).reshape(3, 3), np.ones((2, 2))
close = lambda got, want: np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)


def test_pool_wrappers_default_to_2x2_windows_and_pass_stride_padding_and_layout_on():
  close(ops.max_pool(I4), [[5, 7], [13, 15]])
  close(ops.avg_pool(I4), [[2.5, 4.5], [10.5, 12.5]])
  close(ops.min_pool(I4), [[0, 2], [8, 10]])
  close(ops.max_pool(I4, 2, stride=1), [[5, 6, 7], [9, 10, 11], [13, 14, 15]])
  close(ops.avg_pool(I4, 2, stride=2, padding=1),  # padded pixels are not counted
        [[0, 1.5, 3], [6, 7.5, 9], [12, 13.5, 15]])
  close(ops.min_pool(I3, 2, padding="same"), [[0, 2], [6, 8]])
  close(ops.avg_pool(I3, 2, stride=1, padding="same"), [[2, 3, 3.5], [5, 6, 6.5], [6.5, 7.5, 8]])
  close(ops.min_pool(I4, 2, stride=1)[0], [0, 1, 2])
  nchw = I4.reshape(1, 1, 4, 4)
  for fn, want in ((ops.max_pool, [[5, 7], [13, 15]]), (ops.avg_pool, [[2.5, 4.5], [10.5, 12.5]]),
                   (ops.min_pool, [[0, 2], [8, 10]])):
    close(fn(nchw, layout="NCHW"), np.reshape(want, (1, 1, 2, 2)))
    close(ops.pool(nchw, 2, kind=fn.__name__[:3], layout="NCHW"), np.reshape(want, (1, 1, 2, 2)))


def test_conv_defaults_are_valid_stride_1_hwio_channels_last():
  close(ops.conv(I3, O2, 2), [[8, 12], [20, 24]])
  close(ops.conv(I3[None, :, :, None], O2[:, :, None, None], 2)[0, :, :, 0], [[8, 12], [20, 24]])
  # an image without a channel axis and K filters: K feature maps (the filter axis is kept)
  three = np.stack([O2, 2 * O2, -O2], -1)[:, :, None, :]  # (2, 2, 1, 3)
  close(ops.conv2d(I3, three), np.array([[8, 12], [20, 24]])[..., None] * [1, 2, -1])
  close(ops.conv2d(I3.reshape(1, 1, 3, 3), O2.reshape(1, 1, 2, 2), layout="NCHW",
                   kernel_layout="OIHW"), np.reshape([[8, 12], [20, 24]], (1, 1, 2, 2)))


def test_conv1d_passes_bias_padding_stride_and_both_layouts_on():
  x, k = [1.0, 2, 3, 4], [1.0, -1]
  close(ops.conv1d(x, k), [-1, -1, -1])
  close(ops.conv1d(x, k, bias=10), [9, 9, 9])
  close(ops.conv1d(x, k, padding="same"), [-1, -1, -1, 4])
  close(ops.conv1d(x, k, stride=2), [-1, -1])
  close(ops.conv1d(np.reshape(x, (4, 1)), np.reshape(k, (2, 1, 1)), bias=[0.5]), [[-0.5]] * 3)
  # two channels, channels first (N, C, W), PyTorch's (K, C_in, W) kernel
  x2 = np.array([[[1.0, 2, 3, 4], [10, 20, 30, 40]]])
  k2 = np.array([[[1.0, 0], [0, 1]]])  # out = x[c0, i] + x[c1, i + 1]
  close(ops.conv1d(x2, k2, layout="NCW", kernel_layout="OIHW"), [[[21, 32, 43]]])


def test_conv3d_passes_bias_padding_stride_and_both_layouts_on():
  x, k = np.arange(8.0).reshape(2, 2, 2), np.ones((2, 2, 2))
  close(ops.conv3d(x, k), [[[28]]])
  close(ops.conv3d(x, k, bias=1.0), [[[29]]])
  close(ops.conv3d(x, k, padding="same")[1, 1, 1], 7)  # only the last voxel in its window
  counts = np.array([1.0, 2])  # real voxels per axis in each window: 1 then 2
  close(ops.conv3d(np.ones((3, 3, 3)), k, stride=2, padding=1),
        counts[:, None, None] * counts[None, :, None] * counts[None, None, :])
  close(ops.conv3d(x.reshape(1, 1, 2, 2, 2), k.reshape(1, 1, 2, 2, 2), layout="NCDHW",
                   kernel_layout="OIHW"), np.full((1, 1, 1, 1, 1), 28.0))


MESSAGES = [
    (lambda: ops.conv2d([[1, 2], [3]], O2), "the image is a ragged nested list (rows of "
     "different lengths); every row must have the same number of values"),
    (lambda: ops.conv2d(I3, [[1, 1], [1]]), "the kernel is a ragged nested list (rows of "
     "different lengths); every row must have the same number of values"),
    (lambda: ops.conv2d(I3, O2, bias=[[1], [1, 2]]), "the bias is a ragged nested list (rows "
     "of different lengths); every row must have the same number of values"),
    (lambda: ops.max_pool([[1, 2], [3]], 1), "the image is a ragged nested list (rows of "
     "different lengths); every row must have the same number of values"),
    (lambda: ops.conv2d([["a", "b"]], O2),
     "the image must be a rectangular nested list of numbers, got values of type <U1"),
    (lambda: ops.conv2d(I3, O2, stride=0),
     "stride must be at least 1, got 0 (a stride of 0 would never move the filter)"),
    (lambda: ops.max_pool(I3, 2, stride=0),
     "stride must be at least 1, got 0 (a stride of 0 would never move the filter)"),
    (lambda: ops.max_pool(I3, 0), "window must be at least 1, got 0"),
    (lambda: ops.max_pool(I3, (1, 2, 3)), "window must be an int or 2 ints, got (1, 2, 3)"),
    (lambda: ops.max_pool(I3, 2, stride=(1,)), "stride must be an int or 2 ints, got (1,)"),
    (lambda: ops.conv2d(I3, O2, padding="full"),
     "unknown padding 'full'; use 'valid', 'same' or a number of zero pixels such as 1"),
    (lambda: ops.conv2d(I3, O2, padding=(1, 2, 3)), "padding must be 'valid', 'same', an "
     "int, 2 ints or 2 (before, after) pairs, got (1, 2, 3)"),
    (lambda: ops.conv1d([1.0, 2, 3], [1.0, 1], padding=(1, 2, 3)),
     "padding must be 'valid', 'same', an int or a (before, after) pair, got (1, 2, 3)"),
    (lambda: ops.conv2d(I3, O2, padding=-1), "padding must not be negative, got -1"),
    (lambda: ops.conv2d(I3, np.ones((4, 4))), "the kernel 4x4 is larger than the padded "
     "input 3x3; use a smaller window, pad more, or padding='same'"),
    (lambda: ops.max_pool(I3, 4), "the pooling window 4x4 is larger than the padded input "
     "3x3; use a smaller window, pad more, or padding='same'"),
    (lambda: ops.conv2d(I3, O2, layout="CHWN"),
     "unknown layout 'CHWN'; use 'NHWC' (channels last, the default) or 'NCHW' (PyTorch)"),
    (lambda: ops.conv1d([1.0, 2], [1.0], layout="CHWN"),
     "unknown layout 'CHWN'; use 'NWC' (channels last, the default) or 'NCW' (PyTorch)"),
    (lambda: ops.conv2d(np.ones((1, 1, 3, 3, 1)), O2), "a 2D operation takes an image of rank "
     "2 (no batch, no channels), 3 (one image with channels) or 4 (a batch); got shape "
     "(1, 1, 3, 3, 1)"),
    (lambda: ops.conv2d(np.ones((1, 3, 3, 1)), np.ones((2, 2, 1, 1)), kernel_layout="IOHW"),
     "unknown kernel_layout 'IOHW'; use 'HWIO' or 'OIHW'"),
    (lambda: ops.conv2d(I3, np.ones((2, 2, 1))), "a 2D kernel has shape (F,)*2 for one filter "
     "on one channel or 4 axes (spatial..., in_channels, filters); got (2, 2, 1)"),
    (lambda: ops.conv2d(np.ones((5, 5, 3)), np.ones((3, 3, 1, 2))), "the image has 3 "
     "channel(s) but the kernel expects 1 (kernel shape (3, 3, 1, 2)): a filter's depth must "
     "equal the input's channel count"),
    (lambda: ops.conv2d(I3, np.ones((2, 2, 1, 3)), bias=[1, 2]),
     "one bias per filter: the kernel has 3 filter(s) but the bias has shape (2,)"),
    (lambda: ops.pool(I3, 2, kind="median"),
     "unknown pooling kind 'median'; use one of max, avg, min"),
    (lambda: ops.max_pool(I3, 2, padding=2), "padding 2 is as large as the pooling window "
     "(2, 2): some windows would hold only padding; pad less than the window"),
]


@pytest.mark.parametrize("call, message", MESSAGES, ids=range(len(MESSAGES)))
def test_every_refusal_is_the_whole_sentence(call, message):
  with pytest.raises(UserError) as err:
    call()
  assert str(err.value) == message
