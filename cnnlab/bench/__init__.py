"""Measurements: throughput.py (img/s against PyTorch eager and torch.compile, compile time),
time_to_accuracy.py (seconds from a cold process to a test accuracy, per seed), speedrun.py (a
config's target and time limit), curves.py (the speedrun figure), seeds.py (vmapped seeds vs one process each), torch_baseline.py (the
PyTorch yardsticks), child.py (fresh processes), record.py (what every record holds)."""
