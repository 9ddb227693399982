"""The benchmark harness: `python bench/run.py` runs it (see bench/README.md)."""
