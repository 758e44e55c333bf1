"""`summary`: a model's Keras-style layer table (output shapes, parameters, FLOPs per image).

  ./launch.sh summary --model=textbook_cnn         # 333,526 parameters
  ./launch.sh summary --model=vgg_small --input_shape=32,32,3

Built from `jax.eval_shape`, so it runs in a second on any machine and never allocates weights.
"""

from absl import flags

from cnnlab.errors import UserError

flags.DEFINE_string("model", "textbook_cnn", "registered model name, e.g. textbook_cnn")
flags.DEFINE_string("input_shape", "28,28,1", "one image's shape H,W,C (no batch axis)")
FLAGS = flags.FLAGS


def parse_shape(text):
  """'28,28,1' -> (28, 28, 1); anything else is a UserError naming the expected form."""
  try:
    dims = tuple(int(v) for v in text.replace("(", "").replace(")", "").split(",") if v.strip())
  except ValueError:
    dims = ()
  if not dims or any(d < 1 for d in dims):
    raise UserError(f"--input_shape={text!r} is not a shape; give positive ints such as 28,28,1")
  return dims


def main(argv):
  shape = parse_shape(FLAGS.input_shape)
  from cnnlab.inspect.layers import format_summary, summarize  # imports JAX: after the checks
  print(format_summary(summarize(FLAGS.model, shape)))
