"""The machine's limits, measured: the fastest rate of each arithmetic that anything the project has reaches here.

    python -m bench.limit

fp32: numpy's matrix multiply (2048² and 4096²) as the environment sets OpenBLAS up and, in a process of its own,
without `OPENBLAS_CORETYPE` and `OPENBLAS_L2_SIZE` (which hold OpenBLAS to older kernels); torch's; and each
runtime's own convolution at each of the network's layer shapes (a 512² output plane): ONNX Runtime and OpenVINO
fp32, and torch's conv2d (oneDNN). bf16: OpenVINO's bf16 hint and torch's conv2d in bfloat16, at the same shapes.
int8: the mapping layer as the int8 engines run it (srcnn.engine.int8_layer: unsigned 8-bit activations, signed
8-bit weights), by ONNX Runtime and OpenVINO. The runtimes are measured two ways, one session on every core and a
single-threaded session a core side by side (as the service's lanes run), and the faster kept. A rate counts a
multiply-add as two operations. Beside the fp32 limit, the instruction set's peak as a cross-check: FMA lanes a
cycle (from the CPU's vendor and family) × the clock /proc/cpuinfo reports × the cores.
"""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from onnx import TensorProto, helper, numpy_helper

from bench import ROOT
from bench.compute import best_seconds
from srcnn.choice import cpuinfo, machine
from srcnn.cores import machine_cores
from srcnn.engine import int8_layer, onnx_session, openvino_request
from srcnn.weights import load_model, weight_file

SIDE = 512  # the output plane's side of each layer measured
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


def side_by_side(runs):
    """Seconds of the callables `runs` each called once, all at the same time on threads of their own (the
    runtimes release the GIL), the best of repeated rounds (`best_seconds`)."""
    with ThreadPoolExecutor(len(runs)) as pool:
        return best_seconds(lambda: list(pool.map(lambda run: run(), runs)))


def runtime_rate(make_run, batch, flop):
    """GFLOP/s of the faster of one run on every core and a single-threaded run a core side by side; `make_run`
    (threads) -> a callable computing `batch` once."""
    cores = machine_cores()
    together = best_seconds(make_run(cores))
    lanes = side_by_side([make_run(1) for _ in range(cores)])
    return max(flop / together, cores * flop / lanes) / 1e9


def onnx_run(graph, batch):
    def make(threads):
        session = onnx_session(graph, threads)
        return lambda: session.run(None, {"x": batch})

    return make


def openvino_run(graph, batch, hint):
    def make(threads):
        request = openvino_request(graph, threads, hint)
        return lambda: request.infer({0: batch})

    return make


def torch_rate(conv, batch, dtype, flop):
    threads = torch.get_num_threads()
    torch.set_num_threads(machine_cores())
    layer = conv.to(dtype)
    tensor = torch.from_numpy(batch).to(dtype)
    try:
        with torch.inference_mode():
            return flop / best_seconds(lambda: layer(tensor)) / 1e9
    finally:
        torch.set_num_threads(threads)
        conv.float()


def convolution_rates(weights):
    """{arithmetic: {"<runtime> conv <in>→<out> <k>×<k>": GOP/s}} at each layer of the ×2 network in `weights`
    (its mapping layer alone in int8)."""
    model = load_model(weight_file(weights, 2))
    rates = {"fp32": {}, "bf16": {}, "int8": {}}
    rng = np.random.default_rng(0)
    for index, conv in enumerate(model.convs):
        side = SIDE + conv.kernel_size[0] - 1
        batch = rng.random((1, conv.in_channels, side, side), dtype=np.float32)
        flop = 2 * conv.in_channels * conv.out_channels * conv.kernel_size[0] ** 2 * SIDE**2
        shape = f"conv {conv.in_channels}→{conv.out_channels} {conv.kernel_size[0]}×{conv.kernel_size[1]}"
        graph = layer_graph(conv, int8=False)
        rates["fp32"][f"ONNX Runtime {shape}"] = runtime_rate(onnx_run(graph, batch), batch, flop)
        rates["fp32"][f"OpenVINO {shape}"] = runtime_rate(openvino_run(graph, batch, "fp32"), batch, flop)
        rates["fp32"][f"torch {shape}"] = torch_rate(conv, batch, torch.float32, flop)
        rates["bf16"][f"OpenVINO {shape}"] = runtime_rate(openvino_run(graph, batch, "bf16"), batch, flop)
        rates["bf16"][f"torch {shape}"] = torch_rate(conv, batch, torch.bfloat16, flop)
        if index == 1:
            graph = layer_graph(conv, int8=True)
            rates["int8"][f"ONNX Runtime {shape}"] = runtime_rate(onnx_run(graph, batch), batch, flop)
            rates["int8"][f"OpenVINO {shape}"] = runtime_rate(openvino_run(graph, batch, "fp32"), batch, flop)
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


def limits(weights):
    """Every rate measured, each arithmetic's limit (the fastest of its rates), and the ISA's fp32 peak."""
    rates = convolution_rates(weights)
    rates["fp32"].update(matmul_rates())
    return {
        "rates": rates,
        "limits": {arithmetic: max(measured.values()) for arithmetic, measured in rates.items()},
        "isa_peak": isa_peak(),
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
    lines += ["", "| arithmetic | measured | GOP/s |", "| --- | --- | --- |"]
    for arithmetic, rates in found["rates"].items():
        for name, rate in sorted(rates.items(), key=lambda item: -item[1]):
            lines.append(f"| {arithmetic} | {name} | {rate:.0f} |")
    return lines


def checks(found, engines):
    """No engine of `engines` ({name: (arithmetic, GOP/s)}) faster than its arithmetic's limit."""
    return [
        (
            f"{name} ({rate:.0f}) within the {arithmetic} limit ({found['limits'][arithmetic]:.0f})",
            rate <= found["limits"][arithmetic] * 1.02,
        )
        for name, (arithmetic, rate) in engines.items()
    ]


if __name__ == "__main__":
    print("\n".join([machine()["cpu"]] + markdown(limits(ROOT / "weights"))))
