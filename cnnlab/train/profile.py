"""`config.profile_steps`: a jax.profiler trace of a few training steps, in W/profile/.

The first step of the run compiles (or reads the compilation cache), so tracing starts after
it and covers the next `profile_steps` steps of the same epoch, each inside a
jax.profiler.StepTraceAnnotation("train", step_num=N). The trace lands in
W/profile/plugins/profile/<time>/ as <host>.xplane.pb (TensorBoard's profile tab:
`./launch.sh tensorboard --logdir=W`) and <host>.trace.json.gz (ui.perfetto.dev).
"""

import os

import jax

WARMUP_STEPS = 1


def traced(job, first_step, workdir):
  """The job with its train_batch tracing config.profile_steps steps (unchanged when 0)."""
  wanted = job.config.get("profile_steps", 0)
  left_in_epoch = job.steps_per_epoch - first_step % job.steps_per_epoch - WARMUP_STEPS
  steps = min(wanted, left_in_epoch)  # within one epoch: no evaluation or save in the trace
  if steps <= 0:
    return job
  train_batch, calls = job.train_batch, [0]
  start, stop = WARMUP_STEPS, WARMUP_STEPS + steps

  def train_batch_traced(state, sums, *data):
    i = calls[0]
    calls[0] += 1
    if i == start:
      jax.block_until_ready((state, sums))  # the warm-up step ends outside the trace
      jax.profiler.start_trace(os.path.join(workdir, "profile"), create_perfetto_trace=True)
    if not start <= i < stop:
      return train_batch(state, sums, *data)
    with jax.profiler.StepTraceAnnotation("train", step_num=first_step + i):
      state, sums = train_batch(state, sums, *data)
    if i == stop - 1:
      jax.block_until_ready((state, sums))
      jax.profiler.stop_trace()
    return state, sums

  return job._replace(train_batch=train_batch_traced)
