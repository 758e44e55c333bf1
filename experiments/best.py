"""The strongest Fashion-MNIST recipe that fits ~30 minutes per seed on a 2-core CPU.

Run:     ./launch.sh train --config=experiments/best.py --workdir=runs/best
Expect:  test accuracy ~0.929. Measured 2026-11-23, seed 0, 2-core CPU (load ~1.3):
         test 0.9291 (val 0.9341, best = last epoch), 18 epochs in 1,578 s (26.3 min) of
         training at 490-600 img/s. Validation accuracy by epoch: 0.78 (warm-up), 0.90 (8),
         0.918 (11), 0.926 (14), 0.934 (18). The issue's 0.95 (mean of 3 seeds) is NOT
         reached: it needs far more compute than 30 CPU-minutes per seed here.
Recipe:  vgg_small at width 16 (72k parameters, ~7M multiply-adds per image; global average
         pool head, so almost all capacity is in the convolutions), SGD + Nesterov 0.05 with
         weight decay 5e-4, one warmup epoch then cosine to 0, batch 64, label smoothing 0.1,
         random 2-pixel shifts + horizontal flips (clothes are mirror-symmetric), flip
         test-time augmentation. Early stopping off (the schedule must finish); validation
         picks the best epoch.
History: at batch 256 and 8 epochs (lr 0.1) the same model reached test 0.9159 in 29 min on
         a loaded machine. Batch 64 trains ~1.5x faster per image on this CPU (cache): ~700
         vs ~460 img/s alone.
"""

import ml_collections

from experiments import textbook

BATCH_SIZE = 64  # this CPU's sweet spot for vgg_small: ~700 img/s vs ~460 at 256 (cache)
STEPS_PER_EPOCH = 48_000 // BATCH_SIZE  # 750


def get_config():
  c = textbook.get_config()
  c.model = ml_collections.ConfigDict({"name": "vgg_small", "width": 16, "dropout": 0.1})
  c.optimizer = ml_collections.ConfigDict({
      "name": "sgd", "learning_rate": 0.05, "momentum": 0.9, "nesterov": True,
      "weight_decay": 5e-4, "schedule": "cosine", "warmup_steps": STEPS_PER_EPOCH})
  c.batch_size = BATCH_SIZE
  c.eval_batch_size = 1000
  c.num_epochs = 18
  c.early_stopping_patience = 0
  c.label_smoothing = 0.1
  c.augment = ml_collections.ConfigDict({"crop_padding": 2, "flip": True, "erase_prob": 0.0})
  c.eval_flip_tta = True
  return c
