"""PyTorch baselines of the textbook CNN, eager and torch.compile: the yardsticks for cnnlab's CPU speed.

The model is written the way a PyTorch user would (nn.Sequential, Adam, CrossEntropyLoss,
channels_last on CPU where oneDNN prefers it), so the comparison is against idiomatic torch,
not a strawman. torch is imported lazily: cnnlab works without it.
"""

import os
import tempfile
import time

from cnnlab.inspect.reference_models import torch_textbook_cnn


def _torch():
  try:
    import torch
  except ImportError as err:  # pragma: no cover - depends on the machine
    raise ImportError("the PyTorch baseline needs torch: pip install torch (CPU build)") from err
  return torch


class TorchTrainer:
  """One model + Adam + a fixed real-shaped batch; `run(steps)` returns images/s.

  Built once so that repeated, interleaved measurements reuse the warmed-up model.
  """

  def __init__(self, batch_size, channels_last=True, threads=None, seed=0, compiled=False):
    torch = _torch()
    self.torch = torch
    torch.set_num_threads(threads or os.cpu_count())
    torch.manual_seed(seed)
    self.batch_size = batch_size
    self.model = torch_textbook_cnn(dropout=0.4)
    self.fmt = torch.channels_last if channels_last else torch.contiguous_format
    self.model = self.model.to(memory_format=self.fmt)
    self.model.train()
    if compiled:  # static shapes: each batch size gets its own graph, as a user's fixed batch would
      self.model = torch.compile(self.model, dynamic=False)
    self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
    self.loss_fn = torch.nn.CrossEntropyLoss()
    # Random uint8 pixels / 255 and random labels: the shape and dtype of Fashion-MNIST
    # batches, which is all that throughput depends on.
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (batch_size, 1, 28, 28), generator=g, dtype=torch.uint8)
    self.images = (pixels.float() / 255.0).contiguous(memory_format=self.fmt)
    self.labels = torch.randint(0, 10, (batch_size,), generator=g)

  def step(self):
    self.opt.zero_grad(set_to_none=True)
    loss = self.loss_fn(self.model(self.images), self.labels)
    loss.backward()
    self.opt.step()
    return loss

  def compile_seconds(self):
    """Wall time of the first training step (for torch.compile: trace, codegen, C++ build)."""
    start = time.perf_counter()
    self.step().item()
    return time.perf_counter() - start

  def run(self, steps):
    """Images/s over `steps` training steps (eager torch is synchronous on CPU)."""
    start = time.perf_counter()
    for _ in range(steps):
      loss = self.step()
    loss.item()
    return steps * self.batch_size / (time.perf_counter() - start)

  def eval_images_per_s(self, steps):
    torch = self.torch
    self.model.eval()
    with torch.no_grad():
      start = time.perf_counter()
      for _ in range(steps):
        out = self.model(self.images)
      out.sum().item()
      rate = steps * self.batch_size / (time.perf_counter() - start)
    self.model.train()
    return rate


class TorchSide:
  """PyTorch at one batch size, warmed up: eager and torch.compile(model), each run at every core
  and at 1 thread (on a loaded machine OpenMP's spinning threads can make all cores several
  times slower than one). Dynamo guards on the thread count, so torch.compile builds one graph
  per count (measured: the first 1-thread step after an all-core compile recompiled, ~30 s):
  `compile_s` holds each first step, all cores first (an empty inductor cache). A
  torch.compile that fails (no C++ compiler, ...) leaves `compile_error`, one line, and eager
  still runs.
  """

  def __init__(self, batch_size, warmup=5):
    self.cores = os.cpu_count()
    self.threads = sorted({self.cores, 1}, reverse=True)
    self.eager = TorchTrainer(batch_size, threads=self.cores)
    self.eager.run(warmup)
    self.compiled, self.compile_s, self.compile_error = None, {}, None
    # An empty inductor cache, so compile_s is a first compile as cnnlab's compile_s is; kept
    # alive with this object, whose compiled kernels were loaded from it.
    self._cache = tempfile.TemporaryDirectory(prefix="cnnlab-inductor-")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = self._cache.name
    try:
      trainer = TorchTrainer(batch_size, threads=self.cores, compiled=True)
      for t in self.threads:
        trainer.torch.set_num_threads(t)
        self.compile_s[t] = trainer.compile_seconds()
        trainer.run(warmup)
      self.compiled = trainer
    except Exception as err:  # any failure of torch.compile is reported, not fatal
      lines = [l.strip() for l in str(err).splitlines() if l.strip()]
      self.compile_error = f"{type(err).__name__}: {lines[0] if lines else ''}"[:300]

  def _rates(self, trainer, steps):
    rates = {}
    for t in self.threads:
      trainer.torch.set_num_threads(t)
      rates[t] = trainer.run(steps)
    return rates

  def round(self, steps):
    """({threads: eager img/s}, {threads: torch.compile img/s} or None), measured now."""
    eager = self._rates(self.eager, steps)
    return eager, None if self.compiled is None else self._rates(self.compiled, steps)

  def eval_images_per_s(self, steps):
    """Eager evaluation at every core (evaluation is not compiled: a second graph to build)."""
    self.eager.torch.set_num_threads(self.cores)
    return self.eager.eval_images_per_s(steps)


def torch_train_images_per_s(batch_size, steps=50, warmup=10, channels_last=True, threads=None):
  """Training images/s of the eager PyTorch textbook CNN at `batch_size`, after warm-up.

  Data are random uint8-derived images (pixels/255) of Fashion-MNIST's shape; throughput does
  not depend on their content.
  """
  trainer = TorchTrainer(batch_size, channels_last=channels_last, threads=threads)
  trainer.run(warmup)
  return trainer.run(steps)
