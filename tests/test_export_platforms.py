"""Every model's training and evaluation step exported for TPU and GPU on this CPU (jax.export).

The CPU speed paths (im2col kernel gradient, reshape/elementwise max pools, image groups) are
chosen per platform when a program is lowered, so the programs lowered here for `tpu` and
`cuda` must carry XLA's own ops instead: select_and_scatter for a max pool's gradient (the
CPU path never emits it) and no batch split into image groups. The course CNN runs in the quick tier, the others are slow.
"""

import collections
import re

import jax
import jax.numpy as jnp
import optax
import pytest
from jax import export

from cnnlab.models import MODELS, create_model
from cnnlab.train import state as state_lib
from cnnlab.train import step as step_lib

ACCELERATORS = ("tpu", "cuda")
BATCH = 32
MAX_POOLED = {"fashion_cnn_bn", "inception_mini", "lenet5_relu", "speedrun_cnn", "textbook_cnn",
              "vgg_small"}
GROUPED = {"lenet5", "lenet5_relu", "speedrun_cnn", "textbook_cnn"}  # conv trunk in image groups
GROUP = re.compile(r"stablehlo\.slice [^\n]*-> tensor<8x\d+x\d+x1x")  # 8 of the batch's images


def op_counts(exported):
  """({op name: count} of a program's StableHLO operations, its text)."""
  text = exported.mlir_module()
  return collections.Counter(re.findall(r'= "?stablehlo\.(\w+)"?[ (]', text)), text


def exports(name):
  """{platforms: (train step, eval step)} exported for ("cpu",) and for tpu + cuda together."""
  model = create_model(name, num_classes=10)
  state = state_lib.create_train_state(model, optax.adam(1e-3), jax.random.PRNGKey(0), (28, 28, 1))
  batch = {"image": jax.ShapeDtypeStruct((BATCH, 28, 28, 1), jnp.uint8),
           "label": jax.ShapeDtypeStruct((BATCH,), jnp.int32)}
  eval_batch = dict(batch, mask=jax.ShapeDtypeStruct((BATCH,), jnp.bool_))
  lower = lambda fn, platforms, *args: export.export(jax.jit(fn), platforms=platforms)(*args)
  return {p: (lower(step_lib.train_step, p, state, batch),
              lower(step_lib.eval_step, p, state, eval_batch)) for p in (("cpu",), ACCELERATORS)}


def _params(names):
  return [pytest.param(n, marks=() if n == "textbook_cnn" else pytest.mark.slow) for n in names]


@pytest.mark.parametrize("name", _params(sorted(MODELS)))
def test_train_and_eval_steps_export_for_tpu_and_cuda_without_the_cpu_paths(name):
  programs = exports(name)
  train, evaluation = programs[ACCELERATORS]
  assert train.platforms == evaluation.platforms == ACCELERATORS
  assert [a.shape for a in evaluation.out_avals] == [(), (), ()]  # loss, correct, count sums
  (cpu_ops, cpu_text), (acc_ops, acc_text) = (op_counts(programs[p][0]) for p in programs)
  assert cpu_ops["select_and_scatter"] == 0  # CPU: tiled or elementwise max-pool gradients
  assert (acc_ops["select_and_scatter"] > 0) == (name in MAX_POOLED)
  assert bool(GROUP.search(cpu_text)) == (name in GROUPED)
  assert not GROUP.search(acc_text)
