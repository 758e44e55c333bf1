"""config.dtype=bfloat16: bf16 activations and matmuls, float32 parameters, optimizer and loss.

Every model computes its layers in the dtype it is given (read from shapes alone, no compute);
a training step keeps parameters, Adam's moments and the loss in float32 (traced only);
the smoke training in bf16 (CLI, slow tier) tracks the float32 smoke run within stated bounds.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnlab.models import MODELS, create_model, layer_outputs
from conftest import DATA_DIR, needs_data, run_cli, smoke_config

WARNING = ("cnnlab: warning: config.dtype=bfloat16 is for TPU/GPU: XLA:CPU runs bf16 "
           "convolutions through a slow generic loop; on CPU use it for correctness checks only")


def _abstract_outputs(model):
  x = jnp.zeros((2, 28, 28, 1), jnp.float32)
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
  logits, outputs = layer_outputs(model, variables, x)
  return variables, logits, outputs


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_computes_in_bfloat16_with_float32_parameters(name):
  variables, logits, outputs = _abstract_outputs(create_model(name, dtype="bfloat16"))
  assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype("float32")}
  # every layer from the first with parameters on computes in bf16; only reshaping or
  # padding of the float32 images comes before it (fashion_dnn's flatten, lenet5's pad)
  dtypes = {k: v.dtype for k, v in outputs.items()}
  before = list(dtypes)[:[v for v in dtypes.values()].index(jnp.bfloat16)]
  assert set(before) <= {"pad", "flatten"} and len(before) <= 1
  assert {dtypes[k] for k in dtypes if k not in before} == {jnp.dtype(jnp.bfloat16)}
  assert logits.dtype == jnp.bfloat16  # the train step casts to float32 before the loss
  _, logits32, outputs32 = _abstract_outputs(create_model(name))
  assert {v.dtype for v in outputs32.values()} == {logits32.dtype} == {jnp.dtype("float32")}


def test_bfloat16_train_step_keeps_float32_parameters_and_optimizer_state(capsys):
  """The smoke config's state (built) and train step (traced) with config.dtype=bfloat16."""
  from cnnlab.train import state as state_lib
  from cnnlab.train import step as step_lib
  config = smoke_config(dtype="bfloat16")
  batch = {"image": jax.ShapeDtypeStruct((32, 28, 28, 1), jnp.uint8),
           "label": jax.ShapeDtypeStruct((32,), jnp.int32)}
  state, metrics = jax.eval_shape(step_lib.train_step, state_lib.build(config, 64)[1], batch)
  assert capsys.readouterr().err == WARNING + "\n"
  floats = lambda tree: [x.dtype for x in jax.tree.leaves(tree)
                         if jnp.issubdtype(x.dtype, jnp.floating)]
  assert len(floats(state.params)) == 8 and len(floats(state.opt_state)) == 16  # Adam: mu, nu
  assert set(floats((state.params, state.opt_state))) == {jnp.dtype("float32")}
  assert {k: v.dtype for k, v in metrics.items()} == {k: jnp.float32 for k in metrics}


@needs_data
@pytest.mark.slow
def test_bfloat16_smoke_training_tracks_float32(smoke_run, tmp_path):
  """~75 s on 2 loaded cores (bf16 convolutions are slow on CPU)."""
  workdir32, results32 = smoke_run
  workdir = str(tmp_path / "bf16")
  proc = run_cli("train", "--config=experiments/smoke.py", f"--workdir={workdir}",
                 f"--data_dir={DATA_DIR}", "--config.dtype=bfloat16")
  assert proc.returncode == 0, proc.stderr
  assert proc.stderr.splitlines()[0] == WARNING
  read = lambda d: [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl"))]
  bf16, f32 = read(workdir), read(workdir32)
  assert [r["step"] for r in bf16] == [r["step"] for r in f32] == [64, 128]
  # Measured: train loss 1.3087/0.7636 vs 1.3111/0.7654, val loss 0.815/0.600 vs 0.770/0.605.
  # Bounds: train loss within 0.02, validation loss within 0.1, final accuracies within 0.03.
  np.testing.assert_allclose([r["train_loss"] for r in bf16], [r["train_loss"] for r in f32],
                             atol=0.02)
  np.testing.assert_allclose([r["val_loss"] for r in bf16], [r["val_loss"] for r in f32],
                             atol=0.1)
  results = json.load(open(os.path.join(workdir, "results.json")))
  assert abs(results["test_accuracy"] - results32["test_accuracy"]) < 0.03
  assert abs(bf16[-1]["val_accuracy"] - f32[-1]["val_accuracy"]) < 0.03
