"""Sweeps: grid.py (--sweep flags -> points), runner.py (one `train` process per point),
report.py (one row per point -> CSV, Markdown, plot)."""
