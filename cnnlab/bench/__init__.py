"""Measurements: throughput.py (img/s against PyTorch, compile time), time_to_accuracy.py
(seconds from a cold process to a test accuracy), seeds.py (vmapped seeds vs one process
each), torch_baseline.py (the PyTorch eager yardstick), child.py (fresh processes)."""
