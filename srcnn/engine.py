"""Inference engines: the trained network as one function from an edge-padded Y window to its output.

On a CPU the network runs on ONNX Runtime, with the reconstruction layer phase-packed (see `onnx_graph`), in
fp32 or with its mapping layer in int8 (srcnn.quantize), or in torch in bfloat16; on CUDA it runs in torch.
`bench/` measured the choices and `training.evaluate --precision` their cost; the README has the numbers.
"""

import copy

import numpy as np
import onnx
import onnxruntime
import torch
from onnx import TensorProto, helper, numpy_helper

from srcnn.quantize import FALLBACK_RANGE, LEVELS, equalized, quantize_weight
from srcnn.weights import SCALES, file_sha256, load_model, read_sidecar, weight_file

# What each device runs. On a CPU: fp32 and int8 on ONNX Runtime, bf16 in torch (oneDNN); on CUDA, torch.
PRECISIONS = {"cpu": ("fp32", "int8", "bf16"), "cuda": ("fp32", "bf16", "fp16")}
# What precision "auto" picks (the service's and the srcnn command's default). On a CPU: the fastest precision
# whose PSNR-Y cost against fp32 is at most 0.02 dB at ×2, ×3 and ×4 on Set5 and on Set14 (README, Precision).
DEFAULT_PRECISION = {"cpu": "int8", "cuda": "fp32"}
TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# The reconstruction layer's output rows and columns computed by one packed output channel: 2 × 4 = 8 channels,
# one block of MLAS's AVX2 convolution kernels, which pad every layer's output channels to a multiple of 8.
PHASES = (2, 4)


class TorchEngine:
    """The SRCNN module itself, in the dtype and on the device of its parameters (CUDA; bfloat16 on a CPU)."""

    tile = 512  # a GPU wants large tiles; memory still grows only with the tile

    def __init__(self, model):
        self.model = model
        self.border = model.border
        self.multiple = (1, 1)
        dtype = next(model.parameters()).dtype
        self.precision = next(name for name, known in TORCH_DTYPES.items() if known == dtype)

    def __call__(self, window):
        """float32 (h + 2·border, w + 2·border) in [0, 1] -> float32 (h, w), unclipped."""
        parameter = next(self.model.parameters())
        with torch.inference_mode():
            batch = torch.from_numpy(window)[None, None].to(device=parameter.device, dtype=parameter.dtype)
            return self.model(batch)[0, 0].float().cpu().numpy()


class OnnxEngine:
    """The SRCNN module's weights in an ONNX graph run by ONNX Runtime's CPU provider.

    Output sides must be multiples of `multiple` (the phases of the packed last layer). In int8, a tile whose
    first-layer activations go past the calibrated range (srcnn.quantize.FALLBACK_RANGE) runs again in fp32;
    `fallbacks` counts those tiles.
    """

    # Output tile side. A probe on the 2-core CPU (2 threads, 256²-2048² planes): in fp32 256² tiles ran at
    # 204-209 GFLOP/s, 512² tiles 1-3% faster for 4× the memory, 128² tiles 3-7% slower. In int8 with 2 threads
    # (512², 1,024², 2,048² planes): 512² tiles ran at 2.13 / 2.00 / 1.83 × the fp32 limit, 256² at 1.89 / 1.76 /
    # 1.84, 128² at 1.49 / 1.46 / 1.43, 1,024² at 2.07 / 2.16 / 1.95; with one thread (a served worker's), 256²
    # and 512² tiles ran alike (232 and 234 GFLOP/s, 1,024² plane), and 512² tiles held 363 MiB of ONNX Runtime's
    # arena where 256² held 111 MiB (without the arena both ran 40-45% slower).
    TILE, INT8_MULTITHREADED_TILE = 256, 512

    def __init__(self, model, threads=None, calibration=None):
        self.border = model.border
        self.multiple = PHASES
        self.precision = "fp32" if calibration is None else "int8"
        self.tile = self.INT8_MULTITHREADED_TILE if calibration is not None and threads != 1 else self.TILE
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(onnx_graph(model, calibration).SerializeToString(), options,
                                                    providers=["CPUExecutionProvider"])
        self.fallbacks = 0
        if calibration is not None:
            self.fp32 = OnnxEngine(model, threads)
            self.first_limit = FALLBACK_RANGE * calibration["input_step"] * LEVELS

    def __call__(self, window):
        """float32 (h + 2·border, w + 2·border) in [0, 1] -> float32 (h, w), unclipped."""
        rows, columns = PHASES
        height, width = (side - 2 * self.border for side in window.shape)
        outputs = self.session.run(None, {"y": window[None, None]})
        if self.precision == "int8" and outputs[1] > self.first_limit:
            self.fallbacks += 1
            return self.fp32(window)
        packed = outputs[0][0]  # (rows·columns, h/rows, w/columns)
        # Channel p·columns + q holds output pixels (rows·i + p, columns·j + q): interleave them back.
        packed = packed.reshape(rows, columns, height // rows, width // columns)
        return packed.transpose(2, 0, 3, 1).reshape(height, width)


def onnx_graph(model, calibration=None):
    """An ONNX model computing `model` in valid mode, (1, 1, H, W) "y" -> (1, P·Q, (H - 2b)/P, (W - 2b)/Q) "out".

    The reconstruction layer has one output channel, which MLAS runs padded to a block of 8, so it took 17% of
    the time for 1.4% of the work. Packed, output channel p·Q + q is the same filter shifted by (p, q) and
    strided by (P, Q): it computes the pixels at (P·i + p, Q·j + q), and one block does useful work throughout.

    With an int8 `calibration` (srcnn.quantize), the network is its equalized form, the mapping layer runs in
    int8 (`int8_layer`), and a second output "first_max" is the largest first-layer activation (which
    OnnxEngine compares with the calibrated range; ONNX Runtime still fuses the int8 layer, and the reduction
    cost nothing measurable: 0.287 s against 0.284 s on a 1,024² plane).
    """
    if model.channels != 1:
        raise ValueError(f"the ONNX engine runs single-channel (Y) models, not {model.channels} channels")
    if calibration is not None:
        model = equalized(model, calibration)
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
        last_layer = index == len(weights) - 1
        if calibration is not None and index == 1:
            layer_nodes, layer_initializers, value = int8_layer(value, model.convs[1], calibration)
            nodes += layer_nodes
            initializers += layer_initializers
            continue
        initializers += [numpy_helper.from_array(weight, f"w{index}"), numpy_helper.from_array(bias, f"b{index}")]
        output = "out" if last_layer else f"conv{index}"
        strides = list(PHASES) if last_layer else [1, 1]
        nodes.append(helper.make_node("Conv", [value, f"w{index}", f"b{index}"], [output], strides=strides))
        if not last_layer:
            nodes.append(helper.make_node("Relu", [output], [f"relu{index}"]))
            value = f"relu{index}"
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, rows * columns, "rows", "columns"])]
    if calibration is not None:
        nodes.append(helper.make_node("ReduceMax", ["relu0"], ["first_max"], keepdims=0))
        outputs.append(helper.make_tensor_value_info("first_max", TensorProto.FLOAT, []))
    graph = helper.make_graph(
        nodes, "srcnn", [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, "height", "width"])], outputs,
        initializers)
    graph_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(graph_model)
    return graph_model


def int8_layer(value, conv, calibration):
    """(nodes, initializers, output name) of the mapping layer `conv` of an equalized network in int8, in ONNX's
    QDQ form, which ONNX Runtime fuses into one QLinearConv (unsigned 8-bit activations in and out, ReLU folded
    into the output's zero point, signed 8-bit weights with a step per output channel, int32 bias)."""
    integers, steps = quantize_weight(conv.weight.detach())
    input_step, output_step = calibration["input_step"], calibration["output_step"]
    bias_steps = (input_step * steps).numpy().astype(np.float32)
    bias = np.round(conv.bias.detach().numpy() / bias_steps).astype(np.int32)
    initializers = [
        numpy_helper.from_array(integers.numpy(), "w1_int8"),
        numpy_helper.from_array(steps.numpy().astype(np.float32), "w1_step"),
        numpy_helper.from_array(np.zeros(len(bias), np.int8), "w1_zero"),
        numpy_helper.from_array(bias, "b1_int32"),
        numpy_helper.from_array(bias_steps, "b1_step"),
        numpy_helper.from_array(np.zeros(len(bias), np.int32), "b1_zero"),
        numpy_helper.from_array(np.array(input_step, np.float32), "in_step"),
        numpy_helper.from_array(np.array(output_step, np.float32), "out_step"),
        numpy_helper.from_array(np.array(0, np.uint8), "zero"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", [value, "in_step", "zero"], ["in_uint8"]),
        helper.make_node("DequantizeLinear", ["in_uint8", "in_step", "zero"], ["in_dq"]),
        helper.make_node("DequantizeLinear", ["w1_int8", "w1_step", "w1_zero"], ["w1_dq"], axis=0),
        helper.make_node("DequantizeLinear", ["b1_int32", "b1_step", "b1_zero"], ["b1_dq"], axis=0),
        helper.make_node("Conv", ["in_dq", "w1_dq", "b1_dq"], ["conv1"]),
        helper.make_node("Relu", ["conv1"], ["relu1"]),
        helper.make_node("QuantizeLinear", ["relu1", "out_step", "zero"], ["out_uint8"]),
        helper.make_node("DequantizeLinear", ["out_uint8", "out_step", "zero"], ["relu1_dq"]),
    ]
    return nodes, initializers, "relu1_dq"


def resolved(precision, device_type):
    """`precision` with "auto" replaced by the device type's DEFAULT_PRECISION."""
    return DEFAULT_PRECISION[device_type] if precision == "auto" else precision


def make_engine(model, threads=None, precision="fp32", calibration=None):
    """The engine for where `model` lives in `precision` (PRECISIONS, or "auto": DEFAULT_PRECISION): torch on
    CUDA; on a CPU ONNX Runtime (with `threads`) for fp32 and int8 (which needs the weights' `calibration`, see
    `load_engine`), torch for bf16 (`threads` then sets torch's, process-wide)."""
    device = next(model.parameters()).device.type
    precision = resolved(precision, device)
    if precision not in PRECISIONS[device]:
        raise ValueError(f"precision {precision!r} does not run on {device}: choose one of {PRECISIONS[device]}")
    if device == "cpu" and precision in ("fp32", "int8"):
        if precision == "int8" and calibration is None:
            raise ValueError("int8 needs the weights' calibration: run `make calibrate` (training.calibrate)")
        return OnnxEngine(model, threads, calibration if precision == "int8" else None)
    if device == "cpu" and threads:
        torch.set_num_threads(threads)
    return TorchEngine(copy.deepcopy(model).to(TORCH_DTYPES[precision]))


def load_engine(weights_path, device="cpu", threads=None, precision="fp32"):
    """`make_engine` for a weight file: int8 reads its calibration from the file's sidecar (written by
    `make calibrate`), refused when the sidecar calibrated other weights."""
    calibration = None
    if resolved(precision, torch.device(device).type) == "int8":
        calibration = read_sidecar(weights_path).get("int8")
        if calibration is None or calibration.get("weights_sha256") != file_sha256(weights_path):
            raise ValueError(f"{weights_path} has no int8 calibration for these weights in its sidecar: run "
                             f"`make calibrate` (python -m training.calibrate --weights {weights_path})")
    return make_engine(load_model(weights_path, device), threads, precision, calibration)


def load_engines(folder, device="cpu", threads=None, precision="fp32"):
    """{trained scale: `load_engine`} for the weight files srcnn_x2/3/4.pth in `folder` (srcnn.scaling.passes
    serves every factor from them)."""
    return {scale: load_engine(weight_file(folder, scale), device, threads, precision) for scale in SCALES}
