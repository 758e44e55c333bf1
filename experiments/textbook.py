"""The course's reference recipe: textbook CNN, Adam 1e-3, batch 32, <= 20 epochs, early stop.

Run:     ./launch.sh train --config=experiments/textbook.py --workdir=runs/textbook
Expect:  early stop after ~6-12 epochs, test accuracy ~0.91 (course: 0.9083-0.9168),
         a few minutes on a 2-core CPU.
Every other config starts from this one and overrides a few fields.
"""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  # Data: Fashion-MNIST, 48,000 / 12,000 train / validation split by split_seed (as sklearn, 42).
  c.dataset = "fashion_mnist"
  c.data_dir = ""  # "" = the Debian package's directory, else TFDS
  c.validation_fraction = 0.2
  c.split_seed = 42
  c.train_size = 0  # 0 = all; >0 takes the first N (quick runs only)
  c.validation_size = 0
  c.test_size = 0
  # Any dataset (registered name, tfds:NAME or folder:PATH): image_size S > 0 resizes and
  # centre-crops every image to S x S (0 = the dataset's own size); a dataset without a test
  # split has one drawn by test_fraction and split_seed; skip_bad_images skips unreadable files.
  c.image_size = 0
  c.test_fraction = 0.2
  c.skip_bad_images = False
  # Input (cnnlab/input/modes.py): resident = the uint8 training split on every device, stream
  # = Grain reads each process's share of every batch; the same numbers either way. auto =
  # resident when the split fits input_budget_mib (0 = a quarter of min(host, device memory)).
  c.input = "auto"
  c.input_budget_mib = 0
  c.input_workers = 0  # stream: decoding worker processes; 0 = none for arrays, else per core
  c.input_cache = ""  # stream, folder:/tfds: decoded once to disk ("auto": ~/.cache, or a dir)
  # Model (any name of cnnlab.models.MODELS plus its hyperparameters).
  # conv_groups: CPU speed only (the conv trunk in groups of 8 images, up to 16; the same numbers
  # per image), so --config.model.conv_groups=N can be tried from the command line.
  c.model = ml_collections.ConfigDict({"name": "textbook_cnn", "dropout": 0.4, "conv_groups": 16})
  # Optimizer: Keras' Adam defaults.
  c.optimizer = ml_collections.ConfigDict({
      "name": "adam", "learning_rate": 1e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-7,
      "weight_decay": 0.0, "schedule": "constant", "warmup_steps": 0})
  c.batch_size = 32
  c.eval_batch_size = 1000
  c.num_epochs = 20
  c.early_stopping_patience = 2  # epochs without a better val loss; 0 = off
  c.label_smoothing = 0.0
  # On-device augmentation (cnnlab/augment.py) and flip test-time augmentation; off here so
  # the course recipe is unchanged.
  c.augment = ml_collections.ConfigDict({"crop_padding": 0, "flip": False, "erase_prob": 0.0})
  c.eval_flip_tta = False
  c.seed = 0
  c.skip_nonfinite_updates = False
  c.transfer_guard = "disallow"  # the epoch loop must not move data host<->device
  c.profile_steps = 0  # N > 0: a jax.profiler trace of N steps after the first, in W/profile/
  # Scale: S > 1 trains seeds seed..seed+S-1 together in one vmapped program (mean +- std);
  # num_devices 0 = data parallel over all local devices (the batch must divide evenly).
  c.num_seeds = 1
  c.num_devices = 0
  # GPU: XLA_FLAGS=--xla_gpu_deterministic_ops=true (set by the train command before JAX
  # starts), so reruns are bit-identical as on CPU; False trades that for some speed.
  c.deterministic = True
  # Mixed precision: "bfloat16" computes activations and matmuls in bf16 (float32 parameters,
  # optimizer state, loss and softmax): the fast choice on TPU/GPU; on CPU it is very slow
  # (XLA:CPU runs bf16 convolutions in a generic loop), for correctness checks only.
  c.dtype = "float32"
  return c
