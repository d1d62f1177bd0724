"""Saving and loading SRCNN weights: a bare state_dict, and the one home of the JSON sidecar beside it.

A sidecar (`srcnn_x3.json` beside `srcnn_x3.pth`) says how the weights were made and what they score. Training
writes its first keys (`architecture`, the schedule, the data, the final PSNR-Y); `make calibrate` adds `int8`
(the int8 engine's calibration, with the weights' sha256); `make evaluate-precision` adds `costs` (each engine's
PSNR-Y cost against fp32, with the sha256 of the weights and of the calibration they were measured with). The
functions below are the only code that reads or writes those three keys.
"""

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


def int8_calibration(weights_path):
    """The sidecar's int8 calibration when it was made for these weights (their sha256 matches), else None."""
    calibration = read_sidecar(weights_path).get("int8")
    return calibration if calibration and calibration.get("weights_sha256") == file_sha256(weights_path) else None


def record_int8_calibration(weights_path, calibration):
    """Store `calibration` (srcnn.quantize.calibrate's result plus a description) in the sidecar, bound to these
    weights by their sha256. Returns what was stored."""
    calibration = {"weights_sha256": file_sha256(weights_path), **calibration}
    write_sidecar(weights_path, {**read_sidecar(weights_path), "int8": calibration})
    return calibration


def costs_identity(weights_path):
    """What recorded costs apply to: the weights' sha256 and their int8 calibration's."""
    calibration = read_sidecar(weights_path).get("int8")
    return {
        "weights_sha256": file_sha256(weights_path),
        "int8_sha256": hashlib.sha256(json.dumps(calibration, sort_keys=True).encode()).hexdigest(),
    }


def recorded_costs(weights_path):
    """{engine: {set name: PSNR-Y cost in dB}} the sidecar records for these weights and calibration; {} when it
    records none or records them for others."""
    costs = read_sidecar(weights_path).get("costs", {})
    identity = costs_identity(weights_path)
    return costs.get("engines", {}) if all(costs.get(key) == value for key, value in identity.items()) else {}


def record_costs(weights_path, measured):
    """Merge `measured` ({engine: {set name: cost}}) into the sidecar's costs for these weights and calibration
    (costs recorded for other weights or another calibration are dropped)."""
    engines = recorded_costs(weights_path)
    for engine, by_set in measured.items():
        engines.setdefault(engine, {}).update({name: round(cost, 4) for name, cost in by_set.items()})
    write_sidecar(
        weights_path, {**read_sidecar(weights_path), "costs": {**costs_identity(weights_path), "engines": engines}}
    )


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
