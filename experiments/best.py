"""The strongest Fashion-MNIST recipe that fits ~30 minutes per seed on a 2-core CPU.

Run:     ./launch.sh train --config=experiments/best.py --workdir=runs/best
Expect:  test accuracy ~0.92 with flip TTA. Measured 2026-11-23 (seed 0, augmentation and
         TTA patched into the step as they will be wired): the same recipe cut to 8 epochs
         reached val 0.9199 / test 0.9159 in 29 min of training; 10 epochs: expected ~0.92,
         not yet measured. 0.95 needs far more compute than 30 CPU-minutes (e.g.
         --config.model.width=32 --config.num_epochs=30: ~5 h here; not measured).
Recipe:  vgg_small at width 16 (72k parameters, ~7M multiply-adds per image; global average
         pool head, so almost all capacity is in the convolutions), SGD + Nesterov 0.1 with
         weight decay 5e-4, one warmup epoch then cosine to 0, batch 256, label smoothing 0.1,
         random 2-pixel shifts + horizontal flips (clothes are mirror-symmetric), flip
         test-time augmentation. Early stopping off (the schedule must finish); validation
         picks the best epoch. Chosen on validation over fashion_cnn_bn with the same
         augmentation (one-cycle Adam 3e-3, batch 128, 10 epochs, 24 min): val 0.9135.
Timing:  a 256-image step takes 0.87 s even at load average ~2 (XLA's CPU convolutions use
         about one core here), i.e. ~2.7 min per epoch + ~0.3 min validation with TTA:
         10 epochs ~30 min. With the machine shared (load 3-9) epochs took 2.4-6 min.
"""

import ml_collections

from experiments import textbook

STEPS_PER_EPOCH = 48_000 // 256  # 187: the last partial batch is dropped


def get_config():
  c = textbook.get_config()
  c.model = ml_collections.ConfigDict({"name": "vgg_small", "width": 16, "dropout": 0.1})
  c.optimizer = ml_collections.ConfigDict({
      "name": "sgd", "learning_rate": 0.1, "momentum": 0.9, "nesterov": True,
      "weight_decay": 5e-4, "schedule": "cosine", "warmup_steps": STEPS_PER_EPOCH})
  c.batch_size = 256
  c.eval_batch_size = 1000
  c.num_epochs = 10
  c.early_stopping_patience = 0
  c.label_smoothing = 0.1
  c.augment = ml_collections.ConfigDict({"crop_padding": 2, "flip": True, "erase_prob": 0.0})
  c.eval_flip_tta = True
  return c
