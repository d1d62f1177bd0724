"""The serving command line: build srcnn.mar, and start, wait for and stop TorchServe and the KServe predictor
(what the Makefile runs).

    python -m serving archive [--model-store model_store] [--weights weights]
    python -m serving start [--config config.properties] [--timeout 180]
    python -m serving kserve-store [--out kserve-store]    # the storage layout KServe's TorchServe runtime reads
    python -m serving serve-kserve-torchserve [--store kserve-store]  # that layout served as the runtime would
    python -m serving serve-kserve   # the KServe predictor (predictor/) on 8085 (REST) and 8086 (gRPC)
    python -m serving stop           # TorchServe, and the KServe predictor if one runs
    python -m serving has-java       # exit status 0 when a Java 17+ is installed
    python -m serving prepare-venv   # make setup: the activated .venv finds Java and config.properties

`start` first checks that no TorchServe runs and that the config's ports are free (and says in one line what is
wrong if not), then builds srcnn.mar into the config's model store, then starts TorchServe and waits until the
model is READY. It never rebuilds the archive under a running server.
"""

import argparse
import json
import sys
from pathlib import Path

from serving import MODEL_NAME, ServingError
from serving.archive import build_archive, kserve_store
from serving.java import has_java, prepare_venv
from serving.predictor import Predictor
from serving.server import Server, kserve_server
from srcnn.files import REPOSITORY


def serve(server, timeout, greeting, build=None):
    """Start `server` (TorchServe's or the predictor's) for a person at a terminal: refuse in one line if it cannot
    start, else `build()` what it serves, if anything (never under a running server), start it, wait until it is
    ready and print `greeting()`: how to call it. Exit status."""
    problem = server.start_problem()
    if problem:
        print(f"not started: {problem}", file=sys.stderr)
        return 1
    if build:
        print(f"wrote {build()}")
    try:
        server.start(timeout)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    print(greeting())
    return 0


def torchserve_greeting(server):
    return (
        f"{json.dumps(server.workers(), indent=1)}\nSRCNN is serving. Try:\n  curl -T img.png "
        f"{server.inference_url}/predictions/{MODEL_NAME} -o big.png"
    )


def predictor_greeting(predictor):
    url = f"{predictor.inference_url}/v2/models/{MODEL_NAME}"
    return (
        f"SRCNN is serving on KServe's ModelServer (REST :{predictor.http_port}, gRPC :{predictor.grpc_port}; "
        f"log {predictor.log}). Try:\n  curl -s {url}/ready\n  curl -T img.png {url}/infer -o big.png   "
        f"# Open Inference Protocol clients: docs/usage.md"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    archive = commands.add_parser("archive", help="build srcnn.mar")
    archive.add_argument("--model-store", type=Path, default=REPOSITORY / "model_store")
    archive.add_argument("--weights", type=Path, default=REPOSITORY / "weights")
    start = commands.add_parser("start", help="start TorchServe and wait until the model is READY")
    start.add_argument("--config", type=Path, default=REPOSITORY / "config.properties")
    start.add_argument("--timeout", type=float, default=180)
    store = commands.add_parser("kserve-store", help="write the storage layout of KServe's TorchServe runtime")
    store.add_argument("--out", type=Path, default=REPOSITORY / "kserve-store")
    rehearsal = commands.add_parser(
        "serve-kserve-torchserve", help="serve that layout on 127.0.0.1:8085 as the runtime would"
    )
    rehearsal.add_argument("--store", type=Path, default=REPOSITORY / "kserve-store")
    rehearsal.add_argument("--timeout", type=float, default=300)
    predictor = commands.add_parser("serve-kserve", help="start the KServe predictor and wait until it is ready")
    predictor.add_argument("--timeout", type=float, default=300)
    commands.add_parser("stop", help="stop TorchServe")
    commands.add_parser("has-java", help="exit 0 if Java 17+ is installed, 1 if not")
    commands.add_parser("prepare-venv", help="let the activated .venv's torchserve find Java and config.properties")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ServingError as error:  # only the command line turns a library error into an exit status
        print(f"serving: {error}", file=sys.stderr)
        return 1


def run(args):
    """Carry out one parsed command; its exit status."""
    if args.command == "has-java":
        return 0 if has_java() else 1
    if args.command == "prepare-venv":
        prepare_venv()
    elif args.command == "kserve-store":
        print(f"wrote {kserve_store(args.out)}: config/config.properties, config/metrics.yaml, model-store/srcnn.mar")
    elif args.command == "serve-kserve-torchserve":
        server = kserve_server(args.store)
        return serve(server, args.timeout, lambda: torchserve_greeting(server), lambda: kserve_store(args.store))
    elif args.command == "serve-kserve":
        predictor = Predictor()
        return serve(predictor, args.timeout, lambda: predictor_greeting(predictor))
    elif args.command == "archive":
        print(f"wrote {build_archive(args.model_store, args.weights)}")
    elif args.command == "start":
        server = Server(config=args.config)
        return serve(
            server,
            args.timeout,
            lambda: torchserve_greeting(server),
            lambda: build_archive(REPOSITORY / server.properties.get("model_store", "model_store")),
        )
    else:
        if Predictor().stop():
            print("KServe predictor stopped.")
        result = Server().stop()
        print(result.stdout.strip() or "TorchServe stopped.")
        return result.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
