"""Benchmarks: `make bench`, speed and memory of serving against the machine's limit (__main__.py,
docs/speed-and-precision.md); `make bench-train`, training speed in float32 against bfloat16 (training.py); `make
bench-recipes`, training recipes at equal CPU time on T91's validation split (recipes.py)."""

from srcnn.files import REPOSITORY

ROOT = REPOSITORY
