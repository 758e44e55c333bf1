"""Where images come from: datasets named three ways, one transform, random-access sources.

  sources.py     info(config) and source(config, split): the one place a dataset name is
                 resolved (registered names, tfds:NAME[/CONFIG][:VERSION], folder:PATH)
  registered.py  fashion_mnist, mnist, cifar10: IDX files, else TFDS
  folder.py      a directory of class subfolders (the Keras / torchvision ImageFolder convention)
  tfds_data.py   any TFDS image classification dataset
  transform.py   the one resize + centre crop, shared by training, evaluation, predict and viz
  splits.py      held-out parts drawn by a seed (the test split of a dataset without one)

A source is any object with `__len__` and `__getitem__(i) -> (uint8 (H, W, C), int label)`,
already transformed to `info(config).shape`; `arrays()` gives the whole split at once (the
resident mode, cnnlab.data).

How a source reaches the devices is its mode (config.input): modes.py (resident, or streamed
by stream.py with Grain), arrays.py (in-memory and .npy sources), cache.py (a decoded copy on disk).
"""
