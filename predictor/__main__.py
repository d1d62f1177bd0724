"""Serve SRCNN with KServe's ModelServer: REST (KServe v1, Open Inference Protocol v2) and gRPC v2.

    python -m predictor [--http_port 8085] [--grpc_port 8086] [--weights weights] [--model-config FILE]
                        [--model_name srcnn] [any option of kserve.model_server]

The handler settings (limits, precision, threads) and the number of requests computed at once (minWorkers) come
from model-config.yaml, the request limit (max_request_size) from config.properties, as TorchServe's. Like every
KServe ModelServer it listens on every interface, as a pod must: on a shared machine keep the ports behind a
firewall. `make serve-kserve` starts it in the background and waits until the model is ready.
"""

import argparse
import logging
import sys
from pathlib import Path

import yaml

from srcnn.files import REPOSITORY, read_properties

HTTP_PORT, GRPC_PORT = 8085, 8086


def arguments(argv):
    from kserve import model_server

    parser = argparse.ArgumentParser(
        prog="python -m predictor", parents=[model_server.parser], description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--weights", type=Path, default=REPOSITORY / "weights", help="srcnn_x2/3/4.pth")
    parser.add_argument("--model-config", type=Path, default=REPOSITORY / "handler" / "model-config.yaml")
    parser.add_argument(
        "--config",
        type=Path,
        default=REPOSITORY / "config.properties",
        help="TorchServe's config, for max_request_size",
    )
    parser.set_defaults(http_port=HTTP_PORT, grpc_port=GRPC_PORT, model_name="srcnn")
    args = parser.parse_args(argv)
    limit = int(read_properties(args.config)["max_request_size"])
    args.grpc_max_receive_message_length = args.grpc_max_send_message_length = limit
    vars(model_server.args).update(vars(args))  # the ModelServer reads some of its settings from there
    return args, limit


def main(argv=None):
    args, request_limit = arguments(sys.argv[1:] if argv is None else argv)
    from kserve import ModelServer, model_server

    from handler.protocol import Settings
    from predictor.model import SRCNNModel
    from predictor.server import install

    config = yaml.safe_load(args.model_config.read_text())
    settings = Settings.from_yaml(config.get("handler"))
    server = ModelServer(http_port=args.http_port, grpc_port=args.grpc_port, workers=1, enable_grpc=True)
    model = SRCNNModel(args.model_name, args.weights, settings, workers=int(config.get("minWorkers", 1)))
    model.load()
    install(model_server.app, model, request_limit)
    logging.getLogger("kserve.srcnn").info("SRCNN is serving on REST :%d and gRPC :%d", args.http_port, args.grpc_port)
    server.start([model])


if __name__ == "__main__":
    main()
