"""Saving and loading SRCNN weights: a bare state_dict, its architecture in a JSON sidecar beside it."""

import hashlib
import json
from pathlib import Path

import torch

from srcnn.files import REPOSITORY, write_atomically
from srcnn.model import SRCNN


SCALES = (2, 3, 4)  # the scales this project trains and ships a network for
SHIPPED = REPOSITORY / "weights"  # the repository's trained weights


def weight_file(folder, scale):
    """Where the weights for `scale` live in a folder of them: `folder/srcnn_x{scale}.pth`."""
    return Path(folder) / f"srcnn_x{scale}.pth"


def sidecar_path(weights_path):
    """The JSON sidecar of a weight file: `srcnn_x3.pth` -> `srcnn_x3.json`."""
    return Path(weights_path).with_suffix(".json")


def read_sidecar(weights_path):
    """The weight file's sidecar as a dict; {} when it has none."""
    sidecar = sidecar_path(weights_path)
    return json.loads(sidecar.read_text()) if sidecar.exists() else {}


def write_sidecar(weights_path, record):
    """Write `record` as the weight file's sidecar, atomically (training writes it, `make calibrate` adds to it)."""
    write_atomically(sidecar_path(weights_path), json.dumps(record, indent=2) + "\n")


def file_sha256(path):
    """Hex sha256 of a file's bytes: a weight file's identity (sidecars and the service's X-Weights header)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_state_dict(model, path):
    """Write only the state_dict of the unwrapped module (no pickled code), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = getattr(model, "_orig_mod", model)  # unwrap torch.compile
    state = {key: value.detach().cpu() for key, value in module.state_dict().items()}
    write_atomically(path, lambda file: torch.save(state, file))


def load_model(weights_path, device="cpu"):
    """Build the SRCNN described by the weight file's sidecar (defaults if it has none) and load the weights.

    Loads with `weights_only=True`; returns the model in eval mode on `device`.
    """
    model = SRCNN(**read_sidecar(weights_path).get("architecture", {}))
    model.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    return model.to(device).eval()
