"""Speedrun to 0.94 test accuracy on a 2-core CPU: the strongest recipe here (best.py's).

Run:     ./launch.sh bench --time-to-accuracy=0.94   (picks this file; seeds 0, 1, 2, each a
         fresh process with an empty compilation cache; test set checked after every epoch)
Expect:  NOT reached. best.py's recipe (vgg_small width 16, SGD + Nesterov, cosine, flips,
         shifts, flip TTA) reached test 0.9291 (val 0.9341) after 18 epochs in 26 min on this
         machine under load, ~0.933 in ~15 min on a quiet one: about 700 img/s, 86 s per
         epoch of 60k. The published ~0.94 CNNs train 10-20 epochs of ~1M-parameter models,
         several times this model's cost per image: 30-60 min here.
"""

from experiments import best


def get_config():
  return best.get_config()
