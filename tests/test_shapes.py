"""cnnlab.shapes: size, parameter and receptive-field arithmetic, and model summaries."""

import numpy as np
import pytest

from cnnlab import shapes
from cnnlab.inspect import layers
from cnnlab.errors import UserError
from cnnlab.models import MODELS


def test_conv_output_size_course_examples():
  assert shapes.conv_output_size(5, 3, stride=2, padding=1) == 3  # CS231n demo
  assert shapes.conv_output_size(3, 2) == 2
  assert shapes.conv_output_size(3, 2, padding="same") == 3
  assert shapes.conv_output_size(28, 3, stride=2, padding="same") == 14  # example 7
  assert shapes.conv_output_size(28, 3, padding="same") == 28  # example 11
  assert shapes.conv_output_size(28, 3, padding=1) == 28
  assert shapes.conv_output_size(28, 3, stride=2, padding="valid") == 13  # TF floors VALID


def test_explicit_padding_that_does_not_fit_is_reported_unless_floor():
  with pytest.raises(UserError, match=r"\(7 - 3 \+ 1\)/2 = 2.5 is not an integer"):
    shapes.conv_output_size(7, 3, stride=2, padding=(1, 0))
  with pytest.raises(UserError, match="not an integer"):
    shapes.conv_output_size(6, 3, stride=2, padding=0)
  assert shapes.conv_output_size(6, 3, stride=2, padding=0, floor=True) == 2


def test_pool_output_size():
  assert shapes.pool_output_size(28, 2) == 14
  assert shapes.pool_output_size(14, 2, padding="same") == 7
  assert shapes.pool_output_size(2, 2, stride=1) == 1  # example 4 VALID
  assert shapes.pool_output_size(2, 2, stride=1, padding="same") == 2  # example 4 SAME
  assert shapes.pool_output_size(7, 2, padding="valid") == 3


@pytest.mark.parametrize("args, message", [
    ((3, 4), "larger than the padded input"),
    ((5, 3, 0), "stride must be a positive int"),
    ((5, 3, 1, "full"), "unknown padding"),
    ((5, 3, 1, -1), "negative"),
])
def test_bad_sizes_are_user_errors(args, message):
  with pytest.raises(UserError, match=message):
    shapes.conv_output_size(*args)


def test_padding_forms_follow_ops_resolve_padding():
  assert shapes.conv_output_size(7, 3, padding="SAME") == 7  # any case, as in ops
  assert shapes.pool_output_size(7, 3, stride=1, padding=[1, 1]) == 7
  np.testing.assert_array_equal(shapes.pixel_usage(4, 3, padding="SAME"),
                                shapes.pixel_usage(4, 3, padding=(1, 1)))
  with pytest.raises(UserError, match=r"an int or a \(before, after\) pair, got \(1, 2, 3\)"):
    shapes.conv_output_size(7, 3, padding=(1, 2, 3))
  with pytest.raises(UserError, match="unknown padding 'full'"):
    shapes.size_arithmetic(7, 3, padding="full")


def test_conv_params_course_examples():
  assert shapes.conv_params(3, 5, 3) == 228
  assert shapes.conv_params(6, 5, 3) == 456
  assert shapes.conv_params(32, 3, 1) == 320
  assert shapes.conv_params(64, 3, 32) == 18_496
  assert shapes.conv_params(6, 5, 3, bias=False) == 450
  assert shapes.conv_params(2, (3, 1), 4) == 26


def test_pixel_usage_example10():
  plain, padded = shapes.pixel_usage(4, 3), shapes.pixel_usage(4, 3, padding=1)
  assert (plain[0, 0], plain[0, 1], plain[1, 1]) == (1, 2, 4)
  assert (padded[0, 0], padded[0, 1], padded[1, 1]) == (4, 6, 9)
  np.testing.assert_array_equal(shapes.pixel_usage(4, 3, padding="same"), padded)


def test_receptive_field():
  assert shapes.receptive_field([3, 3]) == 5  # two 3x3 convs see 5x5
  assert shapes.receptive_field([3, 3, 3]) == 7
  # textbook CNN: conv3, pool2, conv3, pool2
  assert shapes.receptive_field([(3, 1), (2, 2), (3, 1), (2, 2)]) == 10
  with pytest.raises(UserError):
    shapes.receptive_field([(3, 0)])


def test_size_arithmetic_lines():
  assert shapes.size_arithmetic(3, 2) == "(W1 - F + 2P)/S + 1 = (3 - 2 + 2*0)/1 + 1 = 2"
  assert "ceil(3/1) = 3" in shapes.size_arithmetic(3, 2, 1, "same")
  assert "0 before, 1 after" in shapes.size_arithmetic(3, 2, 1, "same")
  assert "13.5 -> 13" in shapes.size_arithmetic(28, 3, 2, "valid")


def test_size_arithmetic_whole_lines_for_each_form():
  """Every part of the teaching line: SAME's split, the pool formula, 2*P vs lo+hi, the floor."""
  assert shapes.size_arithmetic(7, 3, 2, "same") == (
      "SAME: ceil(W1/S) = ceil(7/2) = 4; padding (W2-1)*S + F - W1 = (4-1)*2 + 3 - 7 -> 2 in "
      "total: 1 before, 1 after")
  assert shapes.size_arithmetic(4, 2, 2, pool=True) == "(W1 - F)/S + 1 = (4 - 2 + 2*0)/2 + 1 = 2"
  assert shapes.size_arithmetic(4, 2, 2, 1, pool=True) == \
      "(W1 - F + 2P)/S + 1 = (4 - 2 + 2*1)/2 + 1 = 3"
  assert shapes.size_arithmetic(5, 3, 2, 1) == "(W1 - F + 2P)/S + 1 = (5 - 3 + 2*1)/2 + 1 = 3"
  assert shapes.size_arithmetic(7, 3, 2, (1, 0)) == (
      "(W1 - F + 2P)/S + 1 = (7 - 3 + 1+0)/2 + 1 = 3.5 -> 3 (floor: the last pixel(s) are "
      "never covered)")


def test_error_messages_carry_the_right_numbers():
  with pytest.raises(UserError) as err:
    shapes.conv_output_size(3, 7, padding=(2, 1))
  assert str(err.value) == "the filter (7) is larger than the padded input (6)"
  with pytest.raises(UserError) as err:
    shapes.conv_output_size(6, 3, stride=2, padding=1)
  assert str(err.value) == ("(W - F + 2P)/S = (6 - 3 + 2)/2 = 2.5 is not an integer: the filter "
                            "does not fit the last 1 pixel(s); change the padding or stride, or "
                            "ask for floor semantics")
  for args, name in [((0, 3), "input size"), ((5, 0), "filter size"), ((5, 3, 0), "stride")]:
    with pytest.raises(UserError) as err:
      shapes.conv_output_size(*args)
    assert str(err.value) == f"{name} must be a positive int, got 0"
  with pytest.raises(UserError, match="not an integer"):  # pools are exact too unless floor
    shapes.pool_output_size(6, 3, stride=2, padding=0)


def test_pixel_usage_counts_in_integers_and_floors_a_stride_that_does_not_fit():
  usage = shapes.pixel_usage(5, 2, stride=2)  # the last row and column are never covered
  assert usage.dtype.kind == "i"
  np.testing.assert_array_equal(usage, np.outer([1, 1, 1, 1, 0], [1, 1, 1, 1, 0]))


def test_textbook_cnn_summary():
  s = layers.summarize("textbook_cnn")
  assert [r["params"] for r in s["rows"]] == [320, 0, 18_496, 0, 0, 313_700, 0, 1_010]
  assert [r["shape"] for r in s["rows"]] == [
      (None, 28, 28, 32), (None, 14, 14, 32), (None, 14, 14, 64), (None, 7, 7, 64),
      (None, 3136), (None, 100), (None, 100), (None, 10)]
  assert s["total"] == s["trainable"] == 333_526 and s["non_trainable"] == 0
  assert s["rows"][0]["flops"] == 2 * 9 * 32 * 28 * 28
  assert s["rows"][5]["flops"] == 2 * 3136 * 100
  text = layers.format_summary(s)
  assert "Total params: 333,526" in text and "(None, 28, 28, 32)" in text


def test_batchnorm_params_join_the_preceding_tap_and_stats_are_non_trainable():
  s = layers.summarize("fashion_cnn_bn")
  first = s["rows"][0]
  assert first["layer"] == "conv1 +bn1" and first["params"] == 320 + 64
  assert s["rows"][3]["shape"] == (None, 6, 6, 64)  # 64*6*6 = 2304
  assert s["non_trainable"] == 2 * (32 + 64)
  assert s["total"] == s["trainable"] + s["non_trainable"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_summarizes_and_rows_add_up(name):
  s = layers.summarize(name)
  assert s["rows"] and sum(r["params"] for r in s["rows"]) == s["trainable"]
  assert s["rows"][-1]["shape"] == (None, 10)


def test_summary_bad_model_or_input():
  with pytest.raises(UserError, match="did you mean 'textbook_cnn'"):
    layers.summarize("textbook_cn")
  with pytest.raises(UserError, match="input shape"):
    layers.summarize("textbook_cnn", input_shape=(28, 28))
  with pytest.raises(UserError, match="input shape"):
    layers.summarize("textbook_cnn", input_shape=(1, 1, 1))
  with pytest.raises(UserError, match="positive ints"):
    layers.summarize("textbook_cnn", input_shape=(0, 28, 1))
