"""Inspecting trained runs (never training): restore.py (a run's config and checked weights),
inputs.py (dataset images, picture files), predict.py (probabilities, top classes),
layers.py (layer table, kernels, feature maps), plots.py (figures), report.py (all figures
of a run, as `./launch.sh viz` writes them), runs.py (the table comparing runs: `runs`)."""
