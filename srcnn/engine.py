"""Inference engines: the trained network as one function from an edge-padded Y window to its output.

On a CPU the network runs on ONNX Runtime, with the reconstruction layer phase-packed (see `onnx_graph`); on
CUDA it runs in torch. `bench/` measured the choice; the README's Speed section has the numbers.
"""

import numpy as np
import onnx
import onnxruntime
import torch
from onnx import TensorProto, helper, numpy_helper

# The reconstruction layer's output rows and columns computed by one packed output channel: 2 × 4 = 8 channels,
# one block of MLAS's AVX2 convolution kernels, which pad every layer's output channels to a multiple of 8.
PHASES = (2, 4)


class TorchEngine:
    """The SRCNN module itself, on whatever device its parameters live (the CUDA path)."""

    tile = 512  # a GPU wants large tiles; memory still grows only with the tile

    def __init__(self, model):
        self.model = model
        self.border = model.border
        self.multiple = (1, 1)

    def __call__(self, window):
        """float32 (h + 2·border, w + 2·border) in [0, 1] -> float32 (h, w), unclipped."""
        parameter = next(self.model.parameters())
        with torch.inference_mode():
            batch = torch.from_numpy(window)[None, None].to(device=parameter.device, dtype=parameter.dtype)
            return self.model(batch)[0, 0].float().cpu().numpy()


class OnnxEngine:
    """The SRCNN module's weights in an ONNX graph run by ONNX Runtime's CPU provider.

    Output sides must be multiples of `multiple` (the phases of the packed last layer).
    """

    # Output tile side. A probe on the 2-core CPU (2 threads, 256²-2048² planes): 256² tiles ran at 204-209
    # GFLOP/s, 512² tiles 1-3% faster for 4× the memory, 128² tiles 3-7% slower.
    tile = 256

    def __init__(self, model, threads=None):
        self.border = model.border
        self.multiple = PHASES
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(onnx_graph(model).SerializeToString(), options,
                                                    providers=["CPUExecutionProvider"])

    def __call__(self, window):
        """float32 (h + 2·border, w + 2·border) in [0, 1] -> float32 (h, w), unclipped."""
        rows, columns = PHASES
        height, width = (side - 2 * self.border for side in window.shape)
        packed = self.session.run(None, {"y": window[None, None]})[0][0]  # (rows·columns, h/rows, w/columns)
        # Channel p·columns + q holds output pixels (rows·i + p, columns·j + q): interleave them back.
        packed = packed.reshape(rows, columns, height // rows, width // columns)
        return packed.transpose(2, 0, 3, 1).reshape(height, width)


def onnx_graph(model):
    """An ONNX model computing `model` in valid mode, (1, 1, H, W) "y" -> (1, P·Q, (H - 2b)/P, (W - 2b)/Q) "out".

    The reconstruction layer has one output channel, which MLAS runs padded to a block of 8, so it took 17% of
    the time for 1.4% of the work. Packed, output channel p·Q + q is the same filter shifted by (p, q) and
    strided by (P, Q): it computes the pixels at (P·i + p, Q·j + q), and one block does useful work throughout.
    """
    if model.channels != 1:
        raise ValueError(f"the ONNX engine runs single-channel (Y) models, not {model.channels} channels")
    rows, columns = PHASES
    weights = [conv.weight.detach().cpu().float().numpy() for conv in model.convs]
    biases = [conv.bias.detach().cpu().float().numpy() for conv in model.convs]
    last = weights[-1][0]  # (C, k, k)
    side = last.shape[-1]
    packed = np.zeros((rows * columns, last.shape[0], side + rows - 1, side + columns - 1), np.float32)
    for row in range(rows):
        for column in range(columns):
            packed[row * columns + column, :, row : row + side, column : column + side] = last
    weights[-1], biases[-1] = packed, np.repeat(biases[-1], rows * columns)

    initializers, nodes, value = [], [], "y"
    for index, (weight, bias) in enumerate(zip(weights, biases)):
        initializers += [numpy_helper.from_array(weight, f"w{index}"), numpy_helper.from_array(bias, f"b{index}")]
        last_layer = index == len(weights) - 1
        output = "out" if last_layer else f"conv{index}"
        strides = list(PHASES) if last_layer else [1, 1]
        nodes.append(helper.make_node("Conv", [value, f"w{index}", f"b{index}"], [output], strides=strides))
        if not last_layer:
            nodes.append(helper.make_node("Relu", [output], [f"relu{index}"]))
            value = f"relu{index}"
    graph = helper.make_graph(
        nodes, "srcnn",
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, "height", "width"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, rows * columns, "rows", "columns"])],
        initializers)
    graph_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(graph_model)
    return graph_model


def make_engine(model, threads=None):
    """The fastest engine for where `model` lives: torch on CUDA, ONNX Runtime (with `threads`) on a CPU."""
    if next(model.parameters()).device.type == "cuda":
        return TorchEngine(model)
    return OnnxEngine(model, threads)
