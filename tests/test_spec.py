import pytest

import mnist_models as mm


def test_parameter_counts_are_the_named_constants():
  assert mm.num_params(mm.DEFAULT_SPEC) == mm.NUM_PARAMS == 824_458
  assert mm.num_params(mm.BLOG_KERAS_SPEC) == mm.BLOG_KERAS_NUM_PARAMS == 431_242


def test_forward_flops_by_hand():
  conv1 = 2 * 28 * 28 * 3 * 3 * 1 * 32
  conv2 = 2 * 14 * 14 * 3 * 3 * 32 * 64
  dense = 2 * (7 * 7 * 64 * 256 + 256 * 10)
  assert mm.forward_flops(mm.DEFAULT_SPEC) == conv1 + conv2 + dense == 9_287_680
  assert mm.train_flops(mm.DEFAULT_SPEC, 64) == 3 * 64 * 9_287_680


def test_default_is_the_seed_flax_architecture():
  spec = mm.DEFAULT_SPEC
  assert (spec.conv_features, spec.kernel_size, spec.padding) == ((32, 64), (3, 3), "SAME")
  assert (spec.pool_size, spec.dense_features, spec.num_classes, spec.input_shape) == ((2, 2), 256, 10, (28, 28, 1))


@pytest.mark.parametrize(
  "kwargs, match",
  [
    ({"padding": "same"}, "padding"),
    ({"input_shape": (3, 3, 1)}, "too small"),
  ],
)
def test_bad_spec_is_rejected(kwargs, match):
  with pytest.raises(ValueError, match=match):
    mm.CNNSpec(**kwargs)
