"""Host-side tools around the model archive: build srcnn.mar and KServe's storage layout (`serving.archive`),
find a Java runtime (`serving.java`), start, wait for and stop TorchServe (`serving.server`) and the KServe
predictor (`serving.predictor`); the command line is `python -m serving` (what the Makefile runs). Nothing here
goes into the archive: `handler/` holds exactly what the archive ships, and this package runs beside the server,
never inside a worker.
"""

import sys
from pathlib import Path

from srcnn.files import REPOSITORY

MODEL_NAME = "srcnn"
MODEL_CONFIG = REPOSITORY / "handler" / "model-config.yaml"  # the shipped worker and handler settings
BIN = Path(sys.executable).parent  # torchserve and torch-model-archiver live beside this Python


class ServingError(Exception):
    """Something the machine lacks for building or serving the archive; the message says what to do."""
