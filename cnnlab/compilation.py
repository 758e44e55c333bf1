"""How cnnlab's programs compile: XLA options, and the persistent compilation cache."""

import os

import jax


# STALE_WEIGHTS: on CPU, jaxlib's XNNPACK dot packs a weight that is a program argument on its
# first call and reuses the packed copy for as long as the buffer's address stays the same, so
# new weights at a reused address (updated in place by a donating step, or a freed buffer
# reallocated) are read as the old ones (docs/testing.md, "Colab's pins"). Measured: 0.7.2,
# 0.8.0 and 0.8.1 do it; 0.8.2, 0.8.3, 0.9.0 and 0.10.2 do not.
STALE_WEIGHTS_BELOW = (0, 8, 2)


def compile_options():
  """XLA options for cnnlab's programs: on CPU, optimisation level 1 instead of the default.

  Measured on a 2-core CPU (jaxlib 0.10.2), against the default, interleaved: the training
  step compiles 20-30% faster (textbook batch 128: 3.9-4.9 s vs 4.9-6.8 s; parameter
  initialisation 3x faster), trains as fast or faster (textbook batch 32: ~2,200 vs ~1,900
  img/s; fast.py, best.py: the same within noise), and gives bit-identical numbers
  (tested; level 0 changes the last bit of normal draws). Other backends keep their defaults.
  Below jax 0.8.2 XNNPACK is off too (STALE_WEIGHTS).
  """
  if jax.default_backend() != "cpu":
    return None
  options = {"xla_backend_optimization_level": 1}
  if jax.__version_info__ < STALE_WEIGHTS_BELOW:
    options["xla_cpu_use_xnnpack"] = False
  return options


def use_persistent_cache():
  """Process-wide: a persistent compilation cache for every program this process compiles.

  Reruns of the same config then skip XLA compilation (seconds on CPU, most of a short GPU
  run). CNNLAB_JAX_CACHE picks the directory; an empty value turns the cache off.
  """
  cache = os.environ.get("CNNLAB_JAX_CACHE",
                         os.path.join(os.path.expanduser("~"), ".cache", "cnnlab", "jax"))
  if cache:
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
