"""What every config field means, in one line each, grouped as `./launch.sh config` prints them.

The one home of these meanings. tests/test_cli_help.py fails when a field of any config in
experiments/ or a hyperparameter of a registered model (cnnlab/models/registry.py) has no line
here: a new field is explained where it is added.
"""

# Group -> {dotted field name: meaning}. Order is the printing order.
FIELDS = {
    "data": {
        "dataset": "fashion_mnist, mnist, cifar10, tfds:NAME[/CONFIG][:VERSION] or folder:PATH",
        "data_dir": 'IDX directory ("" = /usr/share/datasets/<dataset>, else TFDS); tfds: its '
                    "data directory",
        "image_size": "S > 0: resize + centre-crop every image to S x S; 0 = the dataset's own",
        "test_fraction": "share of the images drawn as the test split when a dataset has none",
        "skip_bad_images": "folder: skip unreadable image files (with a count) instead of stopping",
        "validation_fraction": "share of the training file held out (0.2: 12,000 images)",
        "split_seed": "seed of the train/validation (and drawn test) split (42: the course's)",
        "train_size": "train on the first N training images only; 0 = all",
        "validation_size": "validate on the first N held-out images only; 0 = all",
        "test_size": "test on the first N test images only; 0 = all 10,000",
        "input": "auto, resident (training split on every device) or stream (Grain)",
        "input_budget_mib": "auto picks resident up to this split size; 0 = 1/4 of min(host, "
                            "device memory)",
        "input_workers": "stream: decoding processes; 0 = none for arrays, one per core else",
        "input_cache": "stream, folder:/tfds: decode once to disk: '' off, auto (~/.cache), a dir",
    },
    "model": {
        "model.name": "a model of cnnlab/models/registry.py; its hyperparameters follow",
    },
    "optimizer": {
        "optimizer.name": "adam, adamw (decoupled weight decay) or sgd (momentum)",
        "optimizer.learning_rate": "learning rate (the peak of a cosine/onecycle schedule)",
        "optimizer.b1": "adam/adamw: decay of the gradient average",
        "optimizer.b2": "adam/adamw: decay of the squared-gradient average",
        "optimizer.eps": "adam/adamw: epsilon added to the denominator (1e-7 as Keras)",
        "optimizer.weight_decay": "L2 for adam and sgd, decoupled for adamw; 0 = off",
        "optimizer.schedule": "constant, cosine (warmup, then cosine to 0) or onecycle",
        "optimizer.warmup_steps": "cosine: steps of linear warmup from 0 to learning_rate",
        "optimizer.momentum": "sgd: momentum (default 0.9)",
        "optimizer.nesterov": "sgd: Nesterov momentum (default True)",
    },
    "training": {
        "batch_size": "training images per step (all seeds and devices together)",
        "eval_batch_size": "images per evaluation step (memory only, same results)",
        "num_epochs": "most passes over the training images",
        "early_stopping_patience": "stop after N epochs without a lower validation loss; 0 = off",
        "label_smoothing": "share of each target spread over all classes; 0 = one-hot",
        "seed": "seed of the weights, data order, dropout and augmentation",
        "skip_nonfinite_updates": "skip steps with a NaN/inf loss instead of stopping the run",
        "transfer_guard": "host<->device copies in the epoch loop: disallow, log, allow",
        "profile_steps": "trace N training steps after the first into W/profile/ (jax.profiler); 0 = off",
        "deterministic": "GPU: bit-identical reruns (deterministic XLA ops), slower",
        "dtype": "float32, or bfloat16 activations/matmuls (float32 weights and loss; TPU/GPU)",
    },
    "augmentation": {
        "augment.crop_padding": "random shifts: pad P pixels, crop back at random; 0 = off",
        "augment.flip": "mirror half of the training images left-right",
        "augment.erase_prob": "chance of erasing one random rectangle per image; 0 = off",
        "augment.erase_area": "erased area as a fraction of the image: (min, max)",
        "augment.erase_aspect": "erased rectangle's smallest aspect ratio (up to its inverse)",
        "eval_flip_tta": "evaluate each image and its mirror (averaged logits)",
    },
    "speedrun": {
        "speedrun.target": "`speedrun`: the test accuracy every seed must reach",
        "speedrun.time_limit_s": "`speedrun`: seconds from a cold process to reach it; 0 = none",
        "speedrun.train_images": "`speedrun`: train on the first N training images; 0 = all",
    },
    "scale": {
        "num_seeds": "S > 1: seeds seed..seed+S-1 in one vmapped program, mean +- std",
        "num_devices": "data parallel over N devices; 0 = all local devices",
    },
}

# A model's hyperparameters (the dataclass fields of its Flax module), by name for every model.
MODEL_HYPERPARAMETERS = {
    "num_classes": "output classes: set from the dataset, not in a config",
    "dtype": "computation dtype: set from config.dtype, not in the model block",
    "dropout": "dropout rate before the classifier (0 = off)",
    "conv_groups": "CPU speed only: the conv trunk in up to N image groups; 1 = off",
    "whiten_eps": "> 0: conv1 = frozen patch-whitening filters from the training images "
                  "(eps added to the eigenvalues); 0 = conv1 learned",
    "whiten_bias": "whitening: train conv1's bias (False: frozen too; a cheaper step)",
    "widths": "filters of conv1 and conv2",
    "hidden": "units of the hidden dense layer",
    "width": "filters of the first stage (later stages double it)",
    "bn_momentum": "BatchNorm running-average momentum (0.9 = PyTorch's 0.1)",
    "blocks_per_stage": "residual blocks in each of the 3 stages",
    "activation": "tanh (the paper) or relu",
    "pool": "avg (the paper's subsampling) or max",
    "input_size": "images are zero-padded to this size (28 -> 32)",
}


def group_of(key):
  """The group of a dotted field name ('other' when no line here explains it)."""
  if key.startswith("model."):
    return "model"
  for group, fields in FIELDS.items():
    if key in fields:
      return group
  return "other"


def meaning(key):
  """One line for a dotted field name, or '' when none is written yet."""
  if key.startswith("model.") and key != "model.name":
    return MODEL_HYPERPARAMETERS.get(key[len("model."):], "")
  return next((fields[key] for fields in FIELDS.values() if key in fields), "")


def format_value(value):
  """A field's value as names and tables write it: floats by repr (1e-3 -> 0.001), else str."""
  return repr(value) if isinstance(value, float) else str(value)
