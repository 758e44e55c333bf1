r"""`conv`: a teaching calculator: convolve or pool a small matrix and show the size arithmetic.

  ./launch.sh conv --image='[[1,2,3],[4,5,6],[7,8,9]]' --kernel='[[1,1],[1,1]]' \
      --padding=same
  ./launch.sh conv --image='[[4,3],[2,1]]' --pool=max --window=2 --stride=1

The image is (H, W) or (H, W, C) nested lists; the kernel (F, F), (F, F, C, K) or the name of
a course edge mask (vertical, horizontal). One operation per call, so every number printed
belongs to it.
"""

from absl import flags

from cnnlab.cli.common import require

flags.DEFINE_string("image", None, "nested list, e.g. '[[1,2,3],[4,5,6],[7,8,9]]'")
flags.DEFINE_string("kernel", None, "nested list, or 'vertical' / 'horizontal' (edge masks)")
flags.DEFINE_string("stride", None, "int or 'S_h,S_w' (default 1 for a conv, the window for a "
                    "pool)")
flags.DEFINE_string("padding", "valid", "valid, same, a number of zero pixels P, or 'P_h,P_w'")
flags.DEFINE_string("bias", None, "one bias per filter: a number or a list of K numbers")
flags.DEFINE_string("pool", None, "pool instead of convolving: max, avg or min")
flags.DEFINE_string("window", "2", "pooling window: int or 'F_h,F_w'")
FLAGS = flags.FLAGS


def main(argv):
  require(FLAGS.image is not None, "give the input with --image='[[1,2,3],[4,5,6],[7,8,9]]'")
  require((FLAGS.kernel is None) != (FLAGS.pool is None),
          "give either --kernel=... (convolve) or --pool=max|avg|min (pool), one of them")
  from cnnlab import calculator
  print(calculator.report(FLAGS.image, FLAGS.kernel, FLAGS.pool, FLAGS.stride, FLAGS.padding,
                          FLAGS.bias, FLAGS.window))
