"""cnnlab: a small, fast JAX/Flax codebase for convolutional neural networks."""

__version__ = "0.1.0"
