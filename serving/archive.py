"""The model archive, srcnn.mar, and the storage layout KServe's TorchServe runtime reads."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from serving import BIN, MODEL_CONFIG, MODEL_NAME, ServingError
from srcnn.files import REPOSITORY
from srcnn.weights import SCALES, weight_file

KSERVE = REPOSITORY / "deploy" / "kserve"  # the runtime's manifests, config.properties and image requirements
METRICS = REPOSITORY / "serving" / "metrics.yaml"  # the frontend's metrics declarations, the service's among them


def build_archive(model_store, weights_dir=REPOSITORY / "weights", model_config=MODEL_CONFIG):
    """Write `model_store/srcnn.mar`: the handler, the `srcnn` package, `model_config` and the weight files
    (with their sidecars) found in `weights_dir`. Returns the archive's path."""
    weights = [weight_file(weights_dir, scale) for scale in SCALES if weight_file(weights_dir, scale).exists()]
    if not weights:
        raise ServingError(f"no srcnn_x2/3/4.pth in {weights_dir}: train them first (make train-all)")
    model_store = Path(model_store)
    model_store.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as temporary:
        # --extra-files copies the folder's *contents* into the archive root, so stage the package inside it.
        stage = Path(temporary) / "stage"
        shutil.copytree(REPOSITORY / "srcnn", stage / "srcnn", ignore=shutil.ignore_patterns("__pycache__"))
        # The whole folder (its model-config.yaml goes in as --config-file): handler/ holds exactly what the
        # archive ships, as tests/test_archive.py checks.
        shutil.copytree(
            REPOSITORY / "handler", stage / "handler", ignore=shutil.ignore_patterns("__pycache__", MODEL_CONFIG.name)
        )
        (stage / "weights").mkdir()
        for path in weights:
            for file in (path, path.with_suffix(".json")):
                if file.exists():
                    shutil.copy2(file, stage / "weights" / file.name)
        command = [
            BIN / "torch-model-archiver",
            "--model-name",
            MODEL_NAME,
            "--version",
            "1.0",
            "--handler",
            REPOSITORY / "handler" / "srcnn_handler.py",
            "--extra-files",
            stage,
            "--config-file",
            model_config,
            "--export-path",
            model_store,
            "--force",
        ]
        # The archiver stages in $TMPDIR/<model name>: a private TMPDIR lets two builds run at once.
        subprocess.run(list(map(str, command)), check=True, env={**os.environ, "TMPDIR": temporary})
    return model_store / f"{MODEL_NAME}.mar"


def kserve_store(out):
    """Write the storage layout the TorchServe runtime (deploy/kserve/servingruntime.yaml) reads:
    `config/config.properties` (with the metrics declarations beside it) and `model-store/srcnn.mar`. What the
    handler imports beyond the stock TorchServe image is in the runtime's image (deploy/kserve/Dockerfile), not
    the archive. Returns `out`."""
    out = Path(out)
    (out / "config").mkdir(parents=True, exist_ok=True)
    shutil.copy2(KSERVE / "config.properties", out / "config" / "config.properties")
    shutil.copy2(METRICS, out / "config" / "metrics.yaml")
    build_archive(out / "model-store")
    return out
