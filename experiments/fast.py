"""Fastest route to 0.91 test accuracy on a 2-core CPU: a slim course CNN, one-cycle Adam, 2 epochs.

Run:     ./launch.sh bench --time-to-accuracy=0.91 --config=experiments/fast.py --cache=both
         (fresh process per seed, test set checked after every epoch, all 60,000 training
         images; seeds 0-2, cold and warm cache)
         ./launch.sh train --config=experiments/fast.py --workdir=runs/fast   (48k/12k split)
Expect:  0.91 after epoch 2 in ~38 s from a cold process, ~36 s with a warm compilation cache
         (test 0.9131 / 0.9151 / 0.9113 for seeds 0 / 1 / 2); validation accuracy after 2
         epochs (48k split) 0.9172 / 0.9189 for seeds 0 / 1.
Why:     time is images x cost per image. The course CNN's conv2 (32->64 at 14x14) is 87% of its
         work; halving both conv widths (16, 32) runs ~1.7x faster (~3,900 img/s at batch 64)
         and a wider dense layer (512) wins back most of the accuracy per epoch. Batch 64 is
         this CPU's sweet spot (32 pays per-step overhead, 128 falls out of cache). Without
         dropout and with label smoothing 0.1 it learns faster in a short run; one-cycle
         (peak 5e-3) ends at a low-noise point; Adam's b2 0.99 adapts faster than 0.999.
         Chosen on the validation split (seed 0; 2 epochs unless said): course widths, hidden
         100: lr 3e-3 0.9094, 5e-3 0.9142, + label smoothing 0.9189 (but ~80 s per run here);
         one epoch of hidden 100 / 256 / 512 / 1024: 0.9032 / 0.9074 / 0.9093 / 0.9075,
         + b2 0.99 0.9108 (its test accuracy, 0.9078, missed the target); widths (16, 32):
         hidden 512 0.9148, + b2 0.99 0.9172, hidden 1024 0.9201 (~25% slower per epoch).
         conv_groups 4 instead of 8 compiled ~2 s faster and trained as fast in a probe, but
         the end-to-end median was no better (47.7 s cold, 43.7 s warm): left at the default.
"""

import ml_collections

from experiments import textbook


def get_config():
  c = textbook.get_config()
  c.model = ml_collections.ConfigDict(
      {"name": "textbook_cnn", "dropout": 0.0, "widths": (16, 32), "hidden": 512})
  c.optimizer.b2 = 0.99
  c.optimizer.learning_rate = 5e-3
  c.optimizer.schedule = "onecycle"
  c.label_smoothing = 0.1
  c.batch_size = 64
  c.num_epochs = 2
  c.early_stopping_patience = 0  # a one-cycle run must finish its schedule
  return c
