"""Benchmarks: `make bench`, speed and memory of serving against the machine's limit (__main__.py, the README's
Speed section), and `make bench-train`, training speed in float32 against bfloat16 (training.py)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT.parent / "shared" / "datasets"  # the datasets beside the repository, as the Makefile's DATA_DIR
