"""SRCNN core: the model and the image math shared by training and serving.

Imports torch, numpy, Pillow and (for the CPU engines, srcnn/engine.py) ONNX Runtime, onnx and OpenVINO; never
`training`, `handler` or TorchServe's `ts`. The `srcnn` command (cli.py, with tqdm) lives here too; only its
`--server` side, client.py, imports requests.
"""

from srcnn.model import SRCNN
from srcnn.upscale import upscale
from srcnn.weights import load_model, save_state_dict

__all__ = ["SRCNN", "upscale", "load_model", "save_state_dict"]
