"""Sweeps: grid.py (--sweep flags -> points and their `train` flags), runner.py (one `train`
process per point), slurm.py (a job array, or commands, for other machines), report.py (one
row per point -> inspect.runs' table as CSV and Markdown, and a plot)."""
