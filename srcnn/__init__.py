"""SRCNN core: the model and the image math shared by training and serving.

Imports torch, numpy, Pillow and (for the CPU engines, srcnn/engine.py) ONNX Runtime, onnx and OpenVINO; never
`training`, `handler` or TorchServe's `ts`. The `srcnn` command (cli.py, with tqdm) lives here too; only its
`--server` side, client.py, imports requests.
"""

from srcnn.bands import upscale
from srcnn.model import SRCNN
from srcnn.weights import load_model, save_state_dict

__version__ = "0.1.0"
__all__ = ["SRCNN", "Upscaler", "upscale", "load_model", "save_state_dict"]


def __getattr__(name):
    # `Upscaler` (srcnn.api) loads the engines' runtimes: imported when asked for, not by every `import srcnn`.
    if name == "Upscaler":
        from srcnn.api import Upscaler

        return Upscaler
    raise AttributeError(f"module 'srcnn' has no attribute {name!r}")
