"""Training: state.py (TrainState, optimizer), step.py (the pure steps), evaluate.py (the one
evaluation), epochs.py (the one epoch loop, with a hook per epoch), lifecycle.py (a run
across commands: saved config, what a resume may change, extend, finished), loop.py
(train_and_evaluate: prepare -> resume -> epochs -> the best epoch's test).

`train_and_evaluate` is imported on first use: the epoch loop alone (bench's time-to-accuracy
runs) then never imports loop.py's checkpointing (Orbax: ~0.3 s of a cold process's start).
"""

__all__ = ["train_and_evaluate"]


def __getattr__(name):
  if name == "train_and_evaluate":
    from cnnlab.train.loop import train_and_evaluate
    return train_and_evaluate
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
