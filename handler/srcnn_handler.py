"""TorchServe handler for SRCNN: request -> decode -> `upscale()` -> encode.

Each request of a batch is handled on its own (sizes differ) and fails on its own: a client mistake answers
that request alone with a 4xx and a JSON body {"code", "type", "message", "error"} ({"error"} for KServe v2);
the batch and the worker live on. TorchServe's gRPC frontend reads only a batch-wide status, so a refused gRPC request
(alone in its batch, as with the shipped batchSize 1) is raised as a PredictionException with that status.

Where the image comes from: the raw body (`curl -T img.png`, or `--data-binary @img.png` with an image
Content-Type), one multipart file field (`-F data=@img.png`), JSON {"image": "<base64>", "scale": 3}, KServe v1
or v2 JSON, or gRPC's input map (handler/wire.py). The scale comes from the `X-Scale` header, a `scale` form or
JSON field (an instance's in v1, `parameters` in v2, the input map's in gRPC), or `default_scale` in
model-config.yaml: any factor from 1 to 8 (srcnn.scaling); or the answer's size from the `X-Size` header or a
`size` field ("1920x1080", or one side alone to keep the aspect ratio). `Accept: image/jpeg` or `image/webp`
picks the answer's format; PNG otherwise.

Every answer of 200 says what was done (X-Scale, X-Output-Size, X-Weights, Server-Timing), and every request,
answered or refused, writes one INFO line to TorchServe's model log (handler.protocol.Trace) and counts in the
service's Prometheus metrics (declared in serving/metrics.yaml): requests by wire format, scale and outcome,
output megapixels, milliseconds per stage.
"""

import faulthandler
import functools
import gc
import json
import logging
import os
import signal
import threading
import time
from dataclasses import asdict
from http import HTTPStatus
from pathlib import Path

import torch
from ts.metrics.metric_type_enum import MetricTypes
from ts.service import Service
from ts.torch_handler.base_handler import BaseHandler
from ts.torch_handler.request_envelope.base import BaseEnvelope
from ts.utils.util import PredictionException

from handler.admission import Admission
from handler.pipeline import computed, plan, respond
from handler.protocol import ClientError, Settings, Trace, header
from handler.wire import GRPC, error_body, is_grpc, read_upload
from srcnn import Upscaler
from srcnn.codec import ImageError
from srcnn.scaling import parse_scale
from srcnn.weights import SCALES, file_sha256, weight_file

logger = logging.getLogger(__name__)


def grpc_refusal(message, status):
    """A client mistake over gRPC, to raise out of the batch so that TorchServe answers it with a gRPC status
    (400 INVALID_ARGUMENT, 413 RESOURCE_EXHAUSTED) whose description is the JSON error. (A function, not a
    subclass: TorchServe wants exactly one class in a handler module.)"""
    refusal = PredictionException(message, status)
    refusal.client_mistake = status < 500  # a server fault keeps TorchServe's traceback in the log
    return refusal


def not_a_refusal(record):
    """Log filter for TorchServe's "Prediction error" traceback: a refused gRPC request is not a server fault."""
    return not (record.exc_info and getattr(record.exc_info[1], "client_mistake", False))


def without_envelope(context):
    """Take TorchServe's KServe service envelope off this worker, if it has one; whether it had.

    With TS_SERVICE_ENVELOPE=kserve or kservev2 (KServe's TorchServe runtime sets it from an InferenceService's
    `serviceEnvelope` label) the worker parses requests in ts/torch_handler/request_envelope/ before the handler
    sees them, and fails with a 503 and a traceback on what it does not expect (binary tensors, an error answer,
    an empty tensor, two inputs, a v1 body). The handler reads KServe v1 and v2 itself (handler/wire.py), so the
    ts.service.Service holding `context` is pointed back at the handler. TorchServe 0.12.0 is its last release:
    where the Service keeps its entry point (`_entry_point`) and an envelope the handler (`_handle_fn`) is fixed.
    """
    for service in gc.get_referrers(context):
        envelope = getattr(getattr(service, "_entry_point", None), "__self__", None)
        if isinstance(service, Service) and isinstance(envelope, BaseEnvelope):
            service._entry_point = envelope._handle_fn
            return True
    return False


@functools.cache  # once a process
def write_stacks_on_sigusr1():
    """From now on, `kill -USR1 <pid>` writes every thread's stack to stderr, each time, and the process goes on.

    Called on the main thread. The signal wakes a thread of its own (through the signal module's wakeup pipe, on
    whichever thread the signal lands), which writes the stacks holding the GIL: no thread runs Python code while
    its frames are read, and whatever the main thread is stuck in, unless it holds the GIL. faulthandler's own signal
    handler reads them at once, from the signal handler, and killed a worker busy with requests in 3 of 150 dumps
    (docs/decisions.md, D23)."""
    reader, writer = os.pipe()
    os.set_blocking(writer, False)
    signal.signal(signal.SIGUSR1, lambda number, frame: None)  # the wakeup pipe does the work
    signal.set_wakeup_fd(writer)

    def wait():
        while True:
            if signal.SIGUSR1 in os.read(reader, 512):
                faulthandler.dump_traceback(all_threads=True)

    threading.Thread(target=wait, name="srcnn-stacks", daemon=True).start()


class SRCNNHandler(BaseHandler):
    """Loads the ×2, ×3 and ×4 weights shipped in the archive and answers each request with its upscaled image."""

    def initialize(self, context):
        # TorchServe's worker reads this on every request: bodies then reach preprocess as the bytes sent, so a
        # malformed JSON body becomes our 400 with its position instead of a logged traceback and a raw payload.
        os.environ["TS_DECODE_INPUT_REQUEST"] = "false"
        logging.getLogger("ts.service").addFilter(not_a_refusal)
        # `kill -USR1 <worker pid>` writes the stack of each of the worker's threads to its stderr, which TorchServe
        # copies into the model log; the worker goes on (a request that seems stuck shows where it is).
        write_stacks_on_sigusr1()
        self.model_name = context.model_name
        self.counting = True  # until a server whose metrics_config lacks serving/metrics.yaml's metrics says no
        self._counted_in = self._counter_objects = None  # the metrics cache the counters were looked up in
        config = context.model_yaml_config or {}
        self.settings = Settings.from_yaml(config.get("handler"))
        # Every worker of this model unpacks the same archive folder: the places of large requests live beside it.
        self.admission = Admission(
            Path(context.system_properties["model_dir"]) / ".admission",
            self.settings.large_output_pixels,
            admitted=max(1, int(config.get("minWorkers", 1)) - 1),
            computing=self.settings.large_computing,
        )
        gpu = context.system_properties.get("gpu_id")
        self.device = torch.device(f"cuda:{gpu}" if torch.cuda.is_available() and gpu is not None else "cpu")
        weights = Path(context.system_properties["model_dir"]) / "weights"
        files = {scale: weight_file(weights, scale) for scale in SCALES}
        missing = [scale for scale, path in files.items() if not path.exists()]
        if missing:
            raise RuntimeError(
                f"weights for ×{missing} are missing: every scale needs all of {list(SCALES)} "
                f"(srcnn.scaling.passes), and the archive has "
                f"{sorted(set(SCALES) - set(missing))} under {weights}"
            )
        parse_scale(self.settings.default_scale)  # a ScaleError stops the worker with the range in its message
        # A precision the device cannot run, or int8 without its calibration, stops the worker the same way.
        # "auto" measures the candidates once per machine (srcnn.choice) and logs the choice and its reason.
        self.upscaler = Upscaler(weights, self.settings.precision, self.settings.threads, self.device)
        self.upscaler.prepare()
        choice = self.upscaler.choice
        # The weights' identity in answers and logs: file name and the start of its sha256 (also in the sidecar).
        self.weights = {scale: f"{path.name};sha256={file_sha256(path)[:12]}" for scale, path in files.items()}
        self.initialized = True
        if without_envelope(context):
            logger.info(
                "TorchServe's KServe envelope (TS_SERVICE_ENVELOPE) taken off: the handler reads KServe v1 "
                "and v2 itself"
            )
        logger.info(
            "SRCNN scales %s on %s, engine %s: %s%s; %d lanes; %s",
            sorted(self.upscaler.lanes[0]),
            self.device,
            choice.engine,
            choice.reason,
            " (cached measurement)" if choice.cached else "",
            len(self.upscaler.lanes),
            self.settings,
        )
        if choice.refused:
            logger.info(
                "SRCNN engines not chosen: %s", "; ".join(f"{name} {why}" for name, why in choice.refused.items())
            )

    def handle(self, data, context):
        """Every request of a batch takes the handler's own path (`_answer`), alone. BaseHandler's other branches
        are owned here: an explanation (POST /explanations/srcnn, KServe v1 :explain) is refused per request in
        `_parse`, and the describe header (what the management API's `GET /models/srcnn?customized=true` sends)
        answers the service's description."""
        started = time.time()
        self.context = context
        if context.get_request_header(0, "describe") == "True":
            output = [self.description() for _ in data]
        else:
            traces = [Trace(request_id=context.get_request_id(index) or "") for index in range(len(data))]
            output = [self._answer(index, row, trace) for index, (row, trace) in enumerate(zip(data, traces))]
            if len(output) == 1 and traces[0].wire == GRPC and traces[0].status != 200:
                # TorchServe maps 413 to RESOURCE_EXHAUSTED and 400 to INVALID_ARGUMENT, but 415 and 422 to
                # INTERNAL: every other client mistake goes out as 400 (the JSON in the description keeps the code).
                status = traces[0].status
                raise grpc_refusal(output[0].decode(), status if status in (400, 413) or status >= 500 else 400)
        context.metrics.add_time("HandlerTime", round((time.time() - started) * 1000, 2), None, "ms")
        return output

    def description(self):
        """What the service is, as JSON: the model, its scales and weights, its engine and its settings."""
        choice = self.upscaler.choice
        return json.dumps(
            {
                "model": self.model_name,
                "weights": {str(scale): identity for scale, identity in self.weights.items()},
                "engine": choice.engine,
                "engine_reason": choice.reason,
                "lanes": len(self.upscaler.lanes),
                "settings": asdict(self.settings),
            },
            ensure_ascii=False,
        )

    def _count(self, trace):
        """Add one request to the service's metrics; a server that does not declare them gets one warning."""
        if not self.counting:
            return
        model = [self.model_name, "Model"]
        scale, outcome = trace.labels(SCALES)
        try:
            requests, megapixels, stages = self._counters()
            requests.add_or_update(1, [*model, trace.wire, scale, outcome], trace.request_id)
            if trace.status < 300:
                megapixels.add_or_update(
                    trace.output_size[0] * trace.output_size[1] / 1e6, [*model, scale], trace.request_id
                )
            for stage, milliseconds in trace.stages.items():
                stages.add_or_update(milliseconds, [*model, stage], trace.request_id)
        except Exception:  # MetricsCacheKeyError and kin: the server's metrics_config is not serving/metrics.yaml
            self.counting = False
            logger.warning(
                "the server's metrics_config does not declare the SRCNN metrics (serving/metrics.yaml "
                "does): requests are not counted",
                exc_info=True,
            )

    def _counters(self):
        """The service's three counters, looked up once for the worker's metrics cache (TorchServe keeps one a
        worker; again only if a context brings another)."""
        metrics = self.context.metrics
        if self._counted_in is not metrics:
            self._counter_objects = [
                metrics.get_metric(name, MetricTypes.COUNTER)
                for name in ("SRCNNRequests", "SRCNNOutputMegapixels", "SRCNNStageMilliseconds")
            ]
            self._counted_in = metrics
        return self._counter_objects

    def _answer(self, index, row, trace):
        """The body answering request `index` of the batch: the encoded image with the headers that say what was
        done, or the JSON error with its status (a client's mistake, a large request the server has no place for,
        or a fault, which must not fail the batch nor kill the worker); either way one log line and the metrics.
        A large request waits for its turn to compute (handler/admission.py)."""
        try:
            with trace.timed("decode"):
                job = self._parse(index, row, trace)
            upscalers = {False: self.upscaler, True: self.upscaler}  # a worker computes one request at a time
            body = computed(
                job, trace, self.admission, upscalers, lambda image, job: self._encode(index, image, job, trace)
            )
            for name, value in trace.headers().items():
                self.context.set_response_header(index, name, value)
        except Exception as error:
            if not isinstance(error, (ClientError, ImageError)):
                logger.exception("request %d failed", index)
            refusal = ClientError.answering(error)
            trace.status, trace.error, trace.wire = refusal.status, refusal.kind, refusal.wire or trace.wire
            self.context.set_response_status(refusal.status, HTTPStatus(refusal.status).phrase, index)
            self.context.set_response_content_type(index, "application/json")
            for name, value in refusal.headers.items():
                self.context.set_response_header(index, name, value)
            body = error_body(refusal, trace.wire)
        logger.info(trace.log_line())
        self._count(trace)
        return body

    def _parse(self, index, row, trace):
        headers = self.context.get_all_request_header(index) or {}
        if is_grpc(headers):  # known before the body is read, so that a refusal of it is a gRPC status too
            trace.wire = GRPC
        if header(headers, "explain") == "True":  # set by TorchServe's frontend on its explanation routes
            raise ClientError(
                404,
                "no_explanations",
                "SRCNN has no explanations to give: send the image to "
                "/predictions/srcnn, /v1/models/srcnn:predict or /v2/models/srcnn/infer for its "
                "upscaled answer",
            )
        upload = read_upload(row, headers)
        trace.wire = upload.wire
        return plan(upload, headers, self.settings, trace, self.weights)

    def _encode(self, index, image, job, trace):
        body, content_type, headers = respond(image, job, self.settings, self.upscaler.threads, self.model_name, trace)
        self.context.set_response_content_type(index, content_type)
        for name, value in headers.items():
            self.context.set_response_header(index, name, value)
        return body
