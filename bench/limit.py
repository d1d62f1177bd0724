"""The machine's limits, measured: the fastest rate of each arithmetic that anything the project has reaches here.

    python -m bench.limit

fp32: numpy's matrix multiply (2048² and 4096²) as the environment sets OpenBLAS up and, in a process of its own,
without `OPENBLAS_CORETYPE` and `OPENBLAS_L2_SIZE` (which hold OpenBLAS to older kernels); torch's; and each
runtime's own convolution at each of the network's layer shapes: ONNX Runtime and OpenVINO fp32, and torch's
conv2d (oneDNN). bf16: OpenVINO's bf16 hint and torch's conv2d in bfloat16, at the same shapes. int8: the mapping
layer as the int8 engines run it (srcnn.engine.int8_layer: unsigned 8-bit activations, signed 8-bit weights), by
ONNX Runtime and OpenVINO. Each layer is timed on output planes of the engines' probe tiles and of 512², and the
fastest kept (none past a side where the measurement took LAYER_BUDGET_S). A runtime's rate is its convolution
kernel's, as its own profiler times it (the layout changes around it are the graph's business: the engines keep
activations in the runtime's own layout between layers),
measured two ways, one session on every core and a single-threaded session a core side by side (as the service's
lanes run), and the faster kept. A rate counts a multiply-add as two operations. Beside the fp32 limit, the
instruction set's peak as a cross-check: FMA lanes a cycle (from the CPU's vendor and family) × the clock
/proc/cpuinfo reports × the cores.
"""

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from onnx import TensorProto, helper, numpy_helper

from bench import ROOT
from bench.compute import best_seconds
from srcnn.choice import PROBE_TILES, cpuinfo, machine
from srcnn.cores import machine_cores
from srcnn.engine import int8_layer, onnx_session, openvino_request
from srcnn.weights import load_model, weight_file

SIDES = (*PROBE_TILES, 512)  # the output planes' sides each layer is measured at, smallest first
# Seconds a layer's measurement at one side may take before it is measured at no larger side: a runtime that slow
# (torch's bfloat16 emulated on a CPU without bfloat16 instructions, a minute a call at 512²) is far from any limit.
LAYER_BUDGET_S = 10.0
BLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def matmul_rate(convert):
    """GFLOP/s of an fp32 square matrix multiply of the arrays `convert` makes of numpy's (np.asarray: numpy's BLAS;
    torch.from_numpy: torch's), best of 2048² and 4096²."""
    best = 0.0
    for side in (2048, 4096):
        a, b = (convert(matrix) for matrix in np.random.default_rng(side).random((2, side, side), dtype=np.float32))
        best = max(best, 2 * side**3 / best_seconds(lambda: a @ b) / 1e9)
    return best


def numpy_elsewhere(environment):
    """`matmul_rate` of numpy in a process of its own with `environment` (OpenBLAS reads its settings when it
    loads)."""
    run = subprocess.run(
        [sys.executable, "-c", "import numpy; from bench.limit import matmul_rate; print(matmul_rate(numpy.asarray))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=environment,
    )
    return float(run.stdout)


def matmul_rates():
    """GFLOP/s of an fp32 square matrix multiply: numpy as configured here, numpy without the OpenBLAS overrides
    where they are set, and torch."""
    rates = {"numpy matmul": matmul_rate(np.asarray)}
    overridden = [key for key in BLAS_OVERRIDES if key in os.environ]
    if overridden:
        plain = {key: value for key, value in os.environ.items() if key not in BLAS_OVERRIDES}
        rates[f"numpy matmul without {', '.join(overridden)}"] = numpy_elsewhere(plain)
    rates["torch matmul"] = matmul_rate(torch.from_numpy)
    return rates


def layer_graph(conv, int8):
    """A one-layer ONNX model of `conv` (a torch Conv2d): "x" (1, C, H, W) -> its output, in fp32 or, with `int8`,
    as the int8 engines run the mapping layer."""
    if int8:
        nodes, initializers, output = int8_layer("x", conv, {"input_step": 1 / 64, "output_step": 1 / 64})
    else:
        initializers = [
            numpy_helper.from_array(conv.weight.detach().numpy(), "w"),
            numpy_helper.from_array(conv.bias.detach().numpy(), "b"),
        ]
        nodes, output = [helper.make_node("Conv", ["x", "w", "b"], ["out"])], "out"
    graph = helper.make_graph(
        nodes,
        "layer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, conv.in_channels, "h", "w"])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


class OnnxKernel:
    """A profiled ONNX Runtime session of a one-layer graph on `threads`: a call runs `batch` once; `seconds()` is the
    least time the profiler gave its convolution node in any run."""

    def __init__(self, graph, batch, threads):
        self.session = onnx_session(graph, threads, str(Path(tempfile.mkdtemp(prefix="srcnn-limit-")) / "layer"))
        self.batch = batch

    def __call__(self):
        self.session.run(None, {"x": self.batch})

    def seconds(self):
        profile = Path(self.session.end_profiling())
        events = json.loads(profile.read_text())
        profile.unlink()
        profile.parent.rmdir()
        return (
            min(
                event["dur"]
                for event in events
                if event.get("cat") == "Node"
                and event["name"].endswith("_kernel_time")
                and event["args"].get("op_name") in ("Conv", "QLinearConv")
            )
            / 1e6
        )


class OpenVinoKernel:
    """An OpenVINO request of a one-layer graph on `threads` with its precision `hint`, counting: a call runs `batch`
    once; `seconds()` is the least time the plugin's counters gave its convolution in any run."""

    def __init__(self, graph, batch, threads, hint):
        self.request = openvino_request(graph, threads, hint, {"PERF_COUNT": True})
        self.batch = batch
        self.best = math.inf

    def __call__(self):
        self.request.infer({0: self.batch})
        counters = self.request.profiling_info
        self.best = min(self.best, sum(c.real_time.total_seconds() for c in counters if c.node_type == "Convolution"))

    def seconds(self):
        return self.best


def kernel_seconds(kernels):
    """The least convolution time any of `kernels` (OnnxKernel, OpenVinoKernel) reported, all called at once on
    threads of their own (the runtimes release the GIL), in repeated rounds (`best_seconds`)."""
    with ThreadPoolExecutor(len(kernels)) as pool:
        best_seconds(lambda: list(pool.map(lambda kernel: kernel(), kernels)))
    return min(kernel.seconds() for kernel in kernels)


def runtime_rate(make_kernel, flop):
    """GFLOP/s of the faster of one kernel on every core and a single-threaded one a core side by side;
    `make_kernel(threads)` -> a kernel computing `flop` once a call."""
    cores = machine_cores()
    together = kernel_seconds([make_kernel(cores)])
    lanes = kernel_seconds([make_kernel(1) for _ in range(cores)])
    return max(flop / together, cores * flop / lanes) / 1e9


def torch_rate(conv, batch, dtype, flop):
    threads = torch.get_num_threads()
    torch.set_num_threads(machine_cores())
    layer = conv.to(dtype)
    tensor = torch.from_numpy(batch).to(dtype)
    try:
        with torch.inference_mode():
            return flop / best_seconds(lambda: layer(tensor), budget=LAYER_BUDGET_S) / 1e9
    finally:
        torch.set_num_threads(threads)
        conv.float()


def convolution_rates(weights):
    """{arithmetic: {"<runtime> conv <in>→<out> <k>×<k> (<side>²)": GOP/s}} at each layer of the ×2 network in
    `weights` (its mapping layer alone in int8), each at the side of SIDES it ran fastest at, and at no side larger
    than one where its measurement took LAYER_BUDGET_S."""
    model = load_model(weight_file(weights, 2))
    best = {}  # (arithmetic, runtime and shape) -> (GOP/s, side)
    slow = set()  # (arithmetic, runtime and shape) over LAYER_BUDGET_S at a smaller side
    rng = np.random.default_rng(0)
    for side in SIDES:
        for index, conv in enumerate(model.convs):
            padded = side + conv.kernel_size[0] - 1
            batch = rng.random((1, conv.in_channels, padded, padded), dtype=np.float32)
            flop = 2 * conv.in_channels * conv.out_channels * conv.kernel_size[0] ** 2 * side**2
            shape = f"conv {conv.in_channels}→{conv.out_channels} {conv.kernel_size[0]}×{conv.kernel_size[1]}"
            graph = layer_graph(conv, int8=False)
            int8 = layer_graph(conv, int8=True) if index == 1 else None
            measures = {
                ("fp32", f"ONNX Runtime {shape}"): lambda: runtime_rate(lambda t: OnnxKernel(graph, batch, t), flop),
                ("fp32", f"OpenVINO {shape}"): lambda: runtime_rate(
                    lambda t: OpenVinoKernel(graph, batch, t, "fp32"), flop
                ),
                ("fp32", f"torch {shape}"): lambda: torch_rate(conv, batch, torch.float32, flop),
                ("bf16", f"OpenVINO {shape}"): lambda: runtime_rate(
                    lambda t: OpenVinoKernel(graph, batch, t, "bf16"), flop
                ),
                ("bf16", f"torch {shape}"): lambda: torch_rate(conv, batch, torch.bfloat16, flop),
            }
            if int8:
                measures[("int8", f"ONNX Runtime {shape}")] = lambda: runtime_rate(
                    lambda t: OnnxKernel(int8, batch, t), flop
                )
                measures[("int8", f"OpenVINO {shape}")] = lambda: runtime_rate(
                    lambda t: OpenVinoKernel(int8, batch, t, "fp32"), flop
                )
            for key, measure in measures.items():  # each called at once, in this iteration
                if key in slow:
                    continue
                started = time.perf_counter()
                rate = measure()
                if time.perf_counter() - started > LAYER_BUDGET_S:
                    slow.add(key)
                if rate > best.get(key, (0.0, None))[0]:
                    best[key] = (rate, side)
    rates = {"fp32": {}, "bf16": {}, "int8": {}}
    for (arithmetic, name), (rate, side) in best.items():
        rates[arithmetic][f"{name} ({side}²)"] = rate
    return rates


# fp32 FLOP a cycle a core (two per FMA lane): AMD by family (and Zen 1's models), Intel by the widest FMA it has
# (two FMA units assumed: some Xeons have one AVX-512 unit, and then the peak is half).
def flop_per_cycle(vendor, family, model, flags):
    if vendor == "AuthenticAMD":
        if family == 23:
            return 16 if model < 0x30 else 32  # Zen 1: two 128-bit FMA pipes; Zen 2: two 256-bit
        if family == 25:
            return 32  # Zen 3 and Zen 4: two 256-bit FMA pipes (Zen 4 splits a 512-bit FMA over both)
        if family >= 26:
            return 64  # Zen 5: two 512-bit FMA pipes
    if vendor == "GenuineIntel":
        return 64 if "avx512f" in flags else 32 if "fma" in flags else 16
    return None


def isa_peak():
    """The instruction set's fp32 peak from /proc/cpuinfo: {"flop_per_cycle", "ghz", "gflops"} (None where the
    CPU or its clock is not known)."""
    fields = cpuinfo()
    try:
        per_cycle = flop_per_cycle(
            fields["vendor_id"], int(fields["cpu family"]), int(fields["model"]), set(fields["flags"].split())
        )
        ghz = float(fields["cpu MHz"]) / 1000
    except (KeyError, ValueError):
        return {"flop_per_cycle": None, "ghz": None, "gflops": None}
    return {
        "flop_per_cycle": per_cycle,
        "ghz": ghz,
        "gflops": None if per_cycle is None else per_cycle * ghz * machine_cores(),
    }


# The arithmetic of each layer in the engines whose layers differ (srcnn.engine.ENGINES): "int8" keeps the first
# layer in fp32 and runs the mapping and reconstruction layers in int8 (OpenVINO's engine); "int8-bf16" runs the
# first in bfloat16.
DESIGNS = {"int8": ("fp32", "int8", "int8"), "int8-bf16": ("bf16", "int8", "int8")}


def ceiling(model, limits, arithmetics):
    """GFLOP/s of `model` (its FLOP a pixel over its seconds a pixel) if each layer ran at the limit of its arithmetic
    in `arithmetics`, with nothing between layers and no halo: what an engine of that design can reach here."""
    seconds = sum(
        2 * conv.in_channels * conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1] / limits[arithmetic]
        for conv, arithmetic in zip(model.convs, arithmetics)
    )
    return model.flops_per_pixel / seconds


def limits(weights):
    """Every rate measured, each arithmetic's limit (the fastest of its rates), the ISA's fp32 peak, and each of
    DESIGNS' ceiling (GFLOP/s)."""
    rates = convolution_rates(weights)
    rates["fp32"].update(matmul_rates())
    found = {arithmetic: max(measured.values()) for arithmetic, measured in rates.items()}
    model = load_model(weight_file(weights, 2))
    return {
        "rates": rates,
        "limits": found,
        "isa_peak": isa_peak(),
        "ceilings": {name: ceiling(model, found, design) for name, design in DESIGNS.items()},
    }


def markdown(found):
    """Lines for bench/results.md."""
    limits, peak = found["limits"], found["isa_peak"]
    lines = [
        f"Limits: fp32 **{limits['fp32']:.0f} GFLOP/s**, bf16 {limits['bf16']:.0f}, int8 {limits['int8']:.0f} "
        "GOP/s: the fastest of each below (a multiply-add counted as two operations)."
    ]
    if peak["gflops"]:
        lines[0] += (
            f" The instruction set's fp32 peak at the {peak['ghz']:.2f} GHz /proc/cpuinfo reports: "
            f"{peak['gflops']:.0f} GFLOP/s ({peak['flop_per_cycle']} FLOP a cycle a core); the fp32 limit "
            f"is {limits['fp32'] / peak['gflops']:.2f}× that, so the cores ran at "
            f"{limits['fp32'] / peak['flop_per_cycle'] / machine_cores():.2f} GHz or more."
        )
    ceilings = "; ".join(
        f"{name} (the first layer {DESIGNS[name][0]}, the others {DESIGNS[name][1]}) **{rate:.0f} GFLOP/s, "
        f"{rate / limits['fp32']:.2f}× the fp32 limit**"
        for name, rate in found["ceilings"].items()
    )
    lines += [
        "",
        f"The mixed engines' ceilings, each layer at its arithmetic's limit with nothing between layers and no halo: "
        f"{ceilings}.",
    ]
    lines += ["", "| arithmetic | measured | GOP/s |", "| --- | --- | --- |"]
    for arithmetic, rates in found["rates"].items():
        for name, rate in sorted(rates.items(), key=lambda item: -item[1]):
            lines.append(f"| {arithmetic} | {name} | {rate:.0f} |")
    return lines


def checks(found, engines):
    """No engine of `engines` ({name: (arithmetic, GOP/s)}) faster than its arithmetic's limit, or its design's
    ceiling for the arithmetics of DESIGNS."""
    checked = []
    for name, (arithmetic, rate) in engines.items():
        bound, what = (
            (found["ceilings"][arithmetic], "ceiling")
            if arithmetic in DESIGNS
            else (found["limits"][arithmetic], "limit")
        )
        checked.append((f"{name} ({rate:.0f}) within the {arithmetic} {what} ({bound:.0f})", rate <= bound * 1.02))
    return checked


if __name__ == "__main__":
    print("\n".join([machine()["cpu"]] + markdown(limits(ROOT / "weights"))))
