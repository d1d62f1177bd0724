"""Upscale an image through TorchServe's gRPC API, with a client built from TorchServe's own inference.proto.

    python -m tools.grpc_client img.png -o big.png [--scale 3] [--address 127.0.0.1:7070]

The stubs are generated at run time (grpcio-tools) from the inference.proto inside the installed TorchServe's
frontend jar, so they always match the server. A refusal is a gRPC error: its status (INVALID_ARGUMENT,
RESOURCE_EXHAUSTED, ...) and, on the first line of its details, the service's JSON error, printed to stderr; the
exit status is then 1.
"""

import argparse
import importlib
import sys
import tempfile
import zipfile
from pathlib import Path

import grpc
import ts
from grpc_tools import protoc

PROTOS = ("inference.proto", "google/rpc/status.proto")  # the service and what it imports beyond protobuf's own


def load_stubs(folder):
    """(messages, services): the modules protoc writes for TorchServe's inference.proto, generated in `folder`."""
    folder = Path(folder)
    with zipfile.ZipFile(Path(ts.__file__).parent / "frontend" / "model-server.jar") as jar:
        for name in PROTOS:
            (folder / "proto" / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / "proto" / name).write_bytes(jar.read(name))
    well_known = Path(protoc.__file__).parent / "_proto"
    if (
        protoc.main(
            [
                "protoc",
                f"-I{folder / 'proto'}",
                f"-I{well_known}",
                f"--python_out={folder}",
                f"--grpc_python_out={folder}",
                *PROTOS,
            ]
        )
        != 0
    ):
        raise RuntimeError("protoc could not compile TorchServe's inference.proto")
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module("inference_pb2"), importlib.import_module("inference_pb2_grpc")
    finally:
        sys.path.remove(str(folder))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.grpc_client", description=__doc__.split("\n\n")[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    sizing = parser.add_mutually_exclusive_group()
    sizing.add_argument("--scale", help="a factor from 1 to 8, such as 2.5 (default: the server's default_scale)")
    sizing.add_argument("--size", help="the answer's size, WxH, Wx or xH")
    parser.add_argument("--address", default="127.0.0.1:7070", help="grpc_inference_port (default: %(default)s)")
    parser.add_argument("--model", default="srcnn")
    args = parser.parse_args(argv)
    inputs = {
        "data": args.image.read_bytes(),
        **{key: value.encode() for key, value in (("scale", args.scale), ("size", args.size)) if value},
    }
    with tempfile.TemporaryDirectory() as folder:
        messages, services = load_stubs(folder)
    with grpc.insecure_channel(args.address) as channel:
        stub = services.InferenceAPIsServiceStub(channel)
        try:
            answer = stub.Predictions(messages.PredictionsRequest(model_name=args.model, input=inputs), timeout=600)
        except grpc.RpcError as error:
            details = (error.details() or "").splitlines()
            print(f"{error.code().name}: {details[0] if details else ''}", file=sys.stderr)
            return 1
    args.output.write_bytes(answer.prediction)
    print(f"wrote {args.output} ({len(answer.prediction):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
