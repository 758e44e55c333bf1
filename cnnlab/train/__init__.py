"""Training: state.py (TrainState, optimizer), step.py (the pure steps), evaluate.py (the one
evaluation), epochs.py (the one epoch loop, with a hook per epoch), loop.py
(train_and_evaluate: prepare -> resume -> epochs -> finish)."""

from cnnlab.train.loop import train_and_evaluate

__all__ = ["train_and_evaluate"]
