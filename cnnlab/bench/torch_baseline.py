"""PyTorch eager baseline of the textbook CNN, the yardstick for cnnlab's CPU speed.

The model is written the way a PyTorch user would (nn.Sequential, Adam, CrossEntropyLoss,
channels_last on CPU where oneDNN prefers it), so the comparison is against idiomatic torch,
not a strawman. torch is imported lazily: cnnlab works without it.
"""

import os
import time


def _torch():
  try:
    import torch
  except ImportError as err:  # pragma: no cover - depends on the machine
    raise ImportError("the PyTorch baseline needs torch: pip install torch (CPU build)") from err
  return torch


def textbook_cnn_torch(dropout=0.4, num_classes=10):
  """Conv32-pool-Conv64-pool-Dense100-dropout-Dense10, as in the course's PyTorch notebook."""
  nn = _torch().nn
  return nn.Sequential(
      nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
      nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
      nn.Flatten(), nn.Linear(64 * 7 * 7, 100), nn.ReLU(), nn.Dropout(dropout),
      nn.Linear(100, num_classes))


class TorchTrainer:
  """One model + Adam + a fixed real-shaped batch; `run(steps)` returns images/s.

  Built once so that repeated, interleaved measurements reuse the warmed-up model.
  """

  def __init__(self, batch_size, channels_last=True, threads=None, seed=0):
    torch = _torch()
    self.torch = torch
    torch.set_num_threads(threads or os.cpu_count())
    torch.manual_seed(seed)
    self.batch_size = batch_size
    self.model = textbook_cnn_torch()
    self.fmt = torch.channels_last if channels_last else torch.contiguous_format
    self.model = self.model.to(memory_format=self.fmt)
    self.model.train()
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


def torch_train_images_per_s(batch_size, steps=50, warmup=10, channels_last=True, threads=None):
  """Training images/s of the eager PyTorch textbook CNN at `batch_size`, after warm-up.

  Data are random uint8-derived images (pixels/255) of Fashion-MNIST's shape; throughput does
  not depend on their content.
  """
  trainer = TorchTrainer(batch_size, channels_last=channels_last, threads=threads)
  trainer.run(warmup)
  return trainer.run(steps)
