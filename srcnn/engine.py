"""Inference engines: the trained network as one function from an edge-padded Y window to its output.

Each engine is a runtime and an arithmetic, named `runtime-arithmetic` (ENGINES): on a CPU, ONNX Runtime and
OpenVINO run a graph built from the weights (`onnx_graph`: the reconstruction layer phase-packed) in fp32 or with
the mapping layer in int8 (srcnn.quantize; on OpenVINO the reconstruction layer too, and in "int8-bf16" the first
layer in bfloat16), OpenVINO also with its bf16 hint, and torch runs the module in bfloat16; on CUDA torch runs the
module. Which one serves is chosen on the machine at hand (srcnn.choice).
"""

import copy
import functools

import numpy as np
import onnx
import onnxruntime
import torch
from onnx import TensorProto, helper, numpy_helper

from srcnn.quantize import FALLBACK_RANGE, LEVELS, equalized, quantize_weight, split_weight
from srcnn.weights import SCALES, int8_calibration, load_model, weight_file

# Every engine by device: name -> (runtime, arithmetic). "fp32" engines compute the reference itself; the others'
# PSNR-Y cost against it is measured per weight file (`make evaluate-precision`, the sidecar's "costs").
ENGINES = {
    "cpu": {
        "onnxruntime-fp32": ("onnxruntime", "fp32"),
        "onnxruntime-int8": ("onnxruntime", "int8"),
        "openvino-fp32": ("openvino", "fp32"),
        "openvino-int8": ("openvino", "int8"),
        "openvino-int8-bf16": ("openvino", "int8-bf16"),
        "openvino-bf16": ("openvino", "bf16"),
        "torch-bf16": ("torch", "bf16"),
    },
    "cuda": {"torch-fp32": ("torch", "fp32"), "torch-bf16": ("torch", "bf16"), "torch-fp16": ("torch", "fp16")},
}
REFERENCE = {"cpu": "onnxruntime-fp32", "cuda": "torch-fp32"}  # what costs are measured against
# The arithmetics whose engines run the mapping layer in int8, and so need the weights' int8 calibration.
INT8_ARITHMETICS = ("int8", "int8-bf16")
TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# In "int8-bf16", the first layer reads the input less this, so that bfloat16's 8 significant bits round a pixel
# of 0..1 by at most 2⁻¹⁰ (a quarter of an 8-bit level) rather than 2⁻⁹; its bias takes the difference back.
BF16_CENTRE = 0.5
# On OpenVINO the int8 range guard reads the largest 8-bit first-layer activation of each channel in each
# GUARD_BLOCK² block of pixels, and computes again with numpy the activations of the (channel, block) cells that
# reached the 8-bit top to compare them with the range (`OpenVinoEngine.past_range`), so that the quantizer stays
# fused into the first layer (docs/decisions.md, D27). Past MAX_CHECKED_CELLS such cells (text and screenshots;
# photographs' tiles have at most about a thousand) the tile runs in fp32 unchecked.
GUARD_BLOCK = 8
MAX_CHECKED_CELLS = 4096
CHECKED_AT_ONCE = 256  # cells whose activations are computed together: about 5 MiB of windows
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
        self.arithmetic = next(name for name, known in TORCH_DTYPES.items() if known == dtype)
        self.name = f"torch-{self.arithmetic}"
        self.fallbacks = 0

    def __call__(self, window):
        """float32 (h + 2·border, w + 2·border) in [0, 1] -> float32 (h, w), unclipped."""
        parameter = next(self.model.parameters())
        with torch.inference_mode():
            batch = torch.from_numpy(window)[None, None].to(device=parameter.device, dtype=parameter.dtype)
            return self.model(batch)[0, 0].float().cpu().numpy()


class GraphEngine:
    """`onnx_graph` of the weights run by a runtime (subclasses: `run` one window, return the graph's outputs).

    Output sides must be multiples of `multiple` (the phases of the packed last layer). In int8, a tile whose
    first-layer activations go past the calibrated range (srcnn.quantize.FALLBACK_RANGE; `past_range`) runs again
    on the same runtime in fp32; `fallbacks` counts those tiles.
    """

    runtime = None
    tile = 256  # output tile side; the engine choice (srcnn.choice) measures which side serves best here

    def __init__(self, model, engine_threads=None, arithmetic="fp32", calibration=None):
        self.border = model.border
        self.multiple = PHASES
        self.arithmetic = arithmetic
        self.name = f"{self.runtime}-{arithmetic}"
        self.fallbacks = 0
        self.fp32 = None
        if calibration is not None:
            self.fp32 = type(self)(model, engine_threads)
            self.first_limit = FALLBACK_RANGE * calibration["input_step"] * LEVELS

    def run(self, batch):
        """The graph's outputs ("out", and the range guard's in int8) for a (1, 1, H, W) float32 batch in [0, 1]."""
        raise NotImplementedError

    def past_range(self, window, guard):
        """Whether a first-layer activation of `window` went past the calibrated range, from the graph's guard
        output: here "first_max", the largest activation."""
        return guard > self.first_limit

    def __call__(self, window):
        """float32 (h + 2·border, w + 2·border) in [0, 1] -> float32 (h, w), unclipped."""
        rows, columns = PHASES
        height, width = (side - 2 * self.border for side in window.shape)
        outputs = self.run(window[None, None])
        if self.fp32 is not None and self.past_range(window, outputs[1]):
            self.fallbacks += 1
            return self.fp32(window)
        packed = outputs[0][0]  # (rows·columns, h/rows, w/columns)
        # Channel p·columns + q holds output pixels (rows·i + p, columns·j + q): interleave them back.
        packed = packed.reshape(rows, columns, height // rows, width // columns)
        return packed.transpose(2, 0, 3, 1).reshape(height, width)


class OnnxEngine(GraphEngine):
    """ONNX Runtime's CPU provider (MLAS kernels; int8 as one fused QLinearConv)."""

    runtime = "onnxruntime"

    def __init__(self, model, engine_threads=None, calibration=None):
        self.session = onnx_session(onnx_graph(model, calibration), engine_threads)
        super().__init__(model, engine_threads, "fp32" if calibration is None else "int8", calibration)

    def run(self, batch):
        return self.session.run(None, {"y": batch})


class OpenVinoEngine(GraphEngine):
    """OpenVINO's CPU plugin (oneDNN kernels, which use AMX, VNNI or AVX2 as the CPU has them) on the same graph in
    `arithmetic`: "fp32"; "bf16", its inference-precision hint, every layer in bfloat16; "int8", the mapping and
    reconstruction layers in int8 (`calibration`, required); "int8-bf16", those and the first layer in bfloat16."""

    runtime = "openvino"

    def __init__(self, model, engine_threads=None, arithmetic="fp32", calibration=None):
        self.bf16_first = arithmetic == "int8-bf16"
        int8 = calibration is not None
        graph = onnx_graph(model, calibration, int8_reconstruction=int8, bf16_first=self.bf16_first, block_guard=int8)
        self.request = openvino_request(graph, engine_threads, "bf16" if arithmetic == "bf16" else "fp32")
        super().__init__(model, engine_threads, arithmetic, calibration)
        if int8:  # the first layer as the graph computes it, for `past_range`
            first = equalized(model, calibration).convs[0]
            self.first_layer = (first.weight.detach().numpy()[:, 0], first.bias.detach().numpy())
            if self.bf16_first:
                self.first_layer = bf16_first_weights(*self.first_layer)
        # The binding's first numpy view of a tensor in a process initialises a static under a lock that two
        # threads can deadlock on with the GIL (OpenVINO 2026.4.1: both lanes of a worker's first request stuck in
        # `tensor.data` for good). One smallest window now, on the thread that builds the engine, takes that step
        # before any lanes run side by side (tests/test_bands.py, the first windows of two lanes).
        rows, columns = self.multiple
        self.run(np.zeros((1, 1, rows + 2 * self.border, columns + 2 * self.border), np.float32))

    def run(self, batch):
        self.request.infer({0: self.graph_input(batch)})
        return [tensor.data for tensor in self.request.output_tensors]

    def graph_input(self, batch):
        """What the graph reads for `batch`: itself, or in "int8-bf16" less BF16_CENTRE and rounded (`onnx_graph`)."""
        return to_bfloat16(batch - np.float32(BF16_CENTRE)) if self.bf16_first else batch

    def past_range(self, window, blocks):
        """`GraphEngine.past_range` from "first_blocks", the largest 8-bit activation of each channel in each
        GUARD_BLOCK² block: only an activation at the 8-bit top (the range clips there) may be past the range, which
        is wider, so only those cells' activations are computed again (`cell_activations`), a chunk at a time."""
        cells = np.argwhere(blocks[0] == LEVELS)
        if len(cells) == 0:
            return False
        if len(cells) > MAX_CHECKED_CELLS:
            return True
        plane = self.graph_input(window)
        return any(
            cell_activations(plane, *self.first_layer, cells[start : start + CHECKED_AT_ONCE]).max() > self.first_limit
            for start in range(0, len(cells), CHECKED_AT_ONCE)
        )


def cell_activations(plane, weight, bias, cells, block=GUARD_BLOCK):
    """The first layer's outputs before its ReLU over a window `plane`, float32 (cells, block²): for each (channel,
    block row, block column) of `cells`, that channel's at each pixel of that block of its valid output (a block
    at the far edges is cut short: its last row or column counts again). `weight` (channels, k, k), `bias`
    (channels,)."""
    side = weight.shape[-1]
    windows = np.lib.stride_tricks.sliding_window_view(plane, (side, side))  # (rows, columns, side, side)
    offsets = np.arange(block)
    rows = np.minimum(cells[:, 1:2] * block + offsets, windows.shape[0] - 1)  # (cells, block)
    columns = np.minimum(cells[:, 2:3] * block + offsets, windows.shape[1] - 1)
    pixels = windows[rows[:, :, None], columns[:, None, :]].reshape(len(cells), block * block, side * side)
    # einsum's own loops, not numpy's BLAS, which would wake threads of its own beside the engine's lanes.
    return np.einsum("npk,nk->np", pixels, weight[cells[:, 0]].reshape(len(cells), -1)) + bias[cells[:, 0], None]


def to_bfloat16(values):
    """float32 `values` rounded to the nearest bfloat16 (ties to even), still float32: exactly what a bfloat16
    convolution reads (OpenVINO's conversion inside the graph, fused into that convolution's input, does not round
    to nearest: docs/decisions.md, D21)."""
    bits = np.ascontiguousarray(values, np.float32).view(np.uint32)
    rounded = bits + (np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1)))
    return (rounded & np.uint32(0xFFFF0000)).view(np.float32)


def onnx_session(graph, engine_threads=None, profile_prefix=None):
    """An ONNX Runtime CPU session running the ONNX model `graph` on `engine_threads` (default: as many as it likes),
    profiling every node's time into a file named from `profile_prefix` where given (the benchmark's)."""
    options = onnxruntime.SessionOptions()
    if engine_threads:
        options.intra_op_num_threads = engine_threads
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return onnxruntime.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])


def openvino_computes_bfloat16():
    """Whether OpenVINO's CPU plugin computes in bfloat16 on this CPU (it lists BF16 among its optimization
    capabilities where the CPU has bfloat16 instructions). Where it does not, it runs a bfloat16 convolution in fp32
    on the operands rounded to bfloat16: the same answer, at fp32's speed. False without OpenVINO."""
    try:
        core = openvino_core()
    except ImportError:
        return False
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


@functools.cache  # once a process, and never released
def openvino_core():
    """The process's one OpenVINO Core, which every OpenVINO engine is compiled by.

    One, not one an engine: each Core makes a CPU plugin of its own, and the plugin gives the thread that makes it a
    new alternate signal stack, remembering the one before; destroyed, it unmaps its stack and, if that is still the
    thread's, puts back the one it remembered. When two plugins end in the order they began, the one put back is the
    first's, already unmapped, and the next signal handled on that thread (a Python handler runs on the alternate
    stack: SIGUSR1's stack dump, SIGINT, uvicorn's SIGTERM) ends the process with SIGSEGV. One plugin that lives as
    long as the process leaves one stack, mapped. ImportError without OpenVINO."""
    import openvino  # a dependency of these engines alone

    return openvino.Core()


def openvino_request(graph, engine_threads=None, hint="fp32", properties=None):
    """An OpenVINO CPU infer request running the ONNX model `graph` on `engine_threads`, `hint` its inference precision
    ("fp32", set explicitly: the plugin's default is bf16 where the CPU has it; or "bf16"); `properties`, more of
    the plugin's settings (the benchmark's PERF_COUNT)."""
    config = {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "f32" if hint == "fp32" else hint,
        # Lanes of single-threaded engines (D11) must not all be pinned to the first core.
        "ENABLE_CPU_PINNING": False,
    }
    if engine_threads:
        config["INFERENCE_NUM_THREADS"] = engine_threads
    config.update(properties or {})
    core = openvino_core()
    return core.compile_model(core.read_model(graph.SerializeToString(), b""), "CPU", config).create_infer_request()


def onnx_graph(model, calibration=None, int8_reconstruction=False, bf16_first=False, block_guard=False):
    """An ONNX model computing `model` in valid mode, (1, 1, H, W) "y" -> (1, P·Q, (H - 2b)/P, (W - 2b)/Q) "out".

    The reconstruction layer has one output channel, which MLAS runs padded to a block of 8 (docs/decisions.md,
    D13). Packed, output channel p·Q + q is the same filter shifted by (p, q) and
    strided by (P, Q): it computes the pixels at (P·i + p, Q·j + q), and one block does useful work throughout.

    With an int8 `calibration` (srcnn.quantize), the network is its equalized form, the mapping layer runs in
    int8 (`int8_layer`), and a second output "first_max" is the largest first-layer activation (which
    GraphEngine compares with the calibrated range; ONNX Runtime still fuses the int8 layer, and the reduction
    costs nothing measurable, D3); with `block_guard`, "first_blocks" instead, the 8-bit first-layer activations'
    max-pool in GUARD_BLOCK² blocks, uint8 (1, C, ⌈(H - k + 1) / block⌉, ⌈(W - k + 1) / block⌉) for a first layer of
    side k (OpenVinoEngine.past_range; OpenVINO pools the layout the mapping layer reads, and keeps the quantizer
    in the first layer, D27). With `int8_reconstruction` too, the reconstruction layer takes the mapping
    layer's 8-bit output as it is and runs in int8 (`reconstruction_halves`), as exact as in fp32: OpenVINO runs
    it so at int8's speed, ONNX Runtime slower than in fp32 (D19). With `bf16_first`, the first layer is a bfloat16
    convolution (`bf16_first_layer`) and "y" the input less BF16_CENTRE, rounded to bfloat16 (`to_bfloat16`).
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
        if calibration is not None and (index == 1 or (last_layer and int8_reconstruction)):
            layer_nodes, layer_initializers, value = (
                int8_layer(value, model.convs[1], calibration)
                if index == 1
                else reconstruction_halves(value, weight, bias)
            )
            nodes += layer_nodes
            initializers += layer_initializers
            continue
        if index == 0 and bf16_first:
            layer_nodes, layer_initializers = bf16_first_layer(weight, bias)
            nodes += layer_nodes
            initializers += layer_initializers
            value = "relu0"
            continue
        initializers += [numpy_helper.from_array(weight, f"w{index}"), numpy_helper.from_array(bias, f"b{index}")]
        output = "out" if last_layer else f"conv{index}"
        strides = list(PHASES) if last_layer else [1, 1]
        nodes.append(helper.make_node("Conv", [value, f"w{index}", f"b{index}"], [output], strides=strides))
        if not last_layer:
            nodes.append(helper.make_node("Relu", [output], [f"relu{index}"]))
            value = f"relu{index}"
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, rows * columns, "rows", "columns"])]
    if calibration is not None and block_guard:
        block = [GUARD_BLOCK, GUARD_BLOCK]
        nodes.append(  # over `int8_layer`'s 8-bit input
            helper.make_node("MaxPool", ["in_uint8"], ["first_blocks"], kernel_shape=block, strides=block, ceil_mode=1)
        )
        outputs.append(
            helper.make_tensor_value_info("first_blocks", TensorProto.UINT8, [1, len(biases[0]), "blocks", "across"])
        )
    elif calibration is not None:
        nodes.append(helper.make_node("ReduceMax", ["relu0"], ["first_max"], keepdims=0))
        outputs.append(helper.make_tensor_value_info("first_max", TensorProto.FLOAT, []))
    graph = helper.make_graph(
        nodes,
        "srcnn",
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, "height", "width"])],
        outputs,
        initializers,
    )
    graph_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(graph_model)
    return graph_model


def bf16_first_layer(weight, bias):
    """(nodes, initializers) of the first layer, "y" -> "relu0", on bfloat16 input (the engine's input less
    BF16_CENTRE) and bfloat16 weights, rounded to nearest here (OpenVINO's constant folding would truncate them), its
    sums in fp32 (a bfloat16 product is exact in fp32) and its bias, which takes the centre back, added in fp32: a
    bfloat16 output rounded before the bias would lose what the bias cancels."""
    rounded, bias = bf16_first_weights(weight, bias)
    bits = (rounded.view(np.uint32) >> np.uint32(16)).astype(np.uint16)
    initializers = [
        helper.make_tensor("w0_bf16", TensorProto.BFLOAT16, weight.shape, bits.tobytes(), raw=True),
        numpy_helper.from_array(bias.reshape(1, -1, 1, 1), "b0"),
    ]
    nodes = [
        helper.make_node("Cast", ["y"], ["y_bf16"], to=TensorProto.BFLOAT16),
        helper.make_node("Conv", ["y_bf16", "w0_bf16"], ["conv0_bf16"]),
        helper.make_node("Cast", ["conv0_bf16"], ["conv0_sums"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["conv0_sums", "b0"], ["conv0"]),
        helper.make_node("Relu", ["conv0"], ["relu0"]),
    ]
    return nodes, initializers


def bf16_first_weights(weight, bias):
    """(weights rounded to the nearest bfloat16, float32; the bias, float32, that takes BF16_CENTRE back) of a first
    layer that reads its input less BF16_CENTRE (`bf16_first_layer`)."""
    rounded = to_bfloat16(weight)
    axes = tuple(range(1, weight.ndim))
    return rounded, (bias + BF16_CENTRE * rounded.astype(np.float64).sum(axis=axes)).astype(np.float32)


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


def reconstruction_halves(value, weight, bias):
    """(nodes, initializers, "out") of the packed reconstruction layer `weight`, `bias` (numpy) on the 8-bit
    activations `value` (the mapping layer's dequantized output), in int8: its weights in two int8 halves
    (srcnn.quantize.split_weight), each output channel computed twice, once by each half, and the two added."""
    integers, steps = split_weight(torch.from_numpy(weight))
    channels = len(bias)
    initializers = [
        numpy_helper.from_array(integers.numpy(), "w2_int8"),
        numpy_helper.from_array(steps.numpy().astype(np.float32), "w2_step"),
        numpy_helper.from_array(np.zeros(2 * channels, np.int8), "w2_zero"),
        numpy_helper.from_array(np.concatenate([bias, np.zeros_like(bias)]), "b2_halves"),
        numpy_helper.from_array(np.array([channels, channels], np.int64), "halves"),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["w2_int8", "w2_step", "w2_zero"], ["w2_dq"], axis=0),
        helper.make_node("Conv", [value, "w2_dq", "b2_halves"], ["out_halves"], strides=list(PHASES)),
        helper.make_node("Split", ["out_halves", "halves"], ["out_coarse", "out_fine"], axis=1),
        helper.make_node("Add", ["out_coarse", "out_fine"], ["out"]),
    ]
    return nodes, initializers, "out"


def make_engine(model, engine_threads=None, name=None, calibration=None):
    """The engine `name` (ENGINES of the device `model` lives on; default its REFERENCE) with `engine_threads`; the int8
    engines need the weights' `calibration` (see `load_engine`). torch's threads are process-wide."""
    device = next(model.parameters()).device.type
    name = name or REFERENCE[device]
    if name not in ENGINES[device]:
        raise ValueError(f"engine {name!r} does not run on {device}: choose one of {sorted(ENGINES[device])}")
    runtime, arithmetic = ENGINES[device][name]
    if arithmetic in INT8_ARITHMETICS and calibration is None:
        raise ValueError("int8 needs the weights' calibration: run `make calibrate` (training.calibrate)")
    if arithmetic not in INT8_ARITHMETICS:
        calibration = None
    if runtime == "onnxruntime":
        return OnnxEngine(model, engine_threads, calibration)
    if runtime == "openvino":
        return OpenVinoEngine(model, engine_threads, arithmetic, calibration)
    if device == "cpu" and engine_threads:
        torch.set_num_threads(engine_threads)
    return TorchEngine(copy.deepcopy(model).to(TORCH_DTYPES[arithmetic]))


def load_engine(weights_path, device="cpu", engine_threads=None, name=None):
    """`make_engine` for a weight file: int8 reads its calibration from the file's sidecar (written by
    `make calibrate`), refused when the sidecar calibrated other weights."""
    calibration = None
    device_type = torch.device(device).type
    if ENGINES[device_type].get(name, (None, None))[1] in INT8_ARITHMETICS:
        calibration = int8_calibration(weights_path)
        if calibration is None:
            raise ValueError(
                f"{weights_path} has no int8 calibration for these weights in its sidecar: run "
                f"`make calibrate` (python -m training.calibrate --weights {weights_path})"
            )
    return make_engine(load_model(weights_path, device), engine_threads, name, calibration)


def load_engines(folder, device="cpu", engine_threads=None, name=None, tile=None):
    """{trained scale: `load_engine`} for the weight files srcnn_x2/3/4.pth in `folder` (srcnn.scaling.passes
    serves every factor from them), in `tile`² tiles (default: the engine's)."""
    engines = {scale: load_engine(weight_file(folder, scale), device, engine_threads, name) for scale in SCALES}
    for engine in engines.values():
        engine.tile = tile or engine.tile
    return engines
