"""`SRCNNModel`: a `kserve.Model` around `srcnn.Upscaler`, taking requests through the pipeline of TorchServe's
handler (handler/pipeline.py): the same limits, error kinds and messages, answer metadata, log line and metrics,
and the same engine choice.

- REST (`rest`, on the routes predictor/server.py adds): KServe v1 `POST /v1/models/srcnn:predict` and the Open
  Inference Protocol `POST /v2/models/srcnn/infer` (JSON or binary tensors, handler/oip.py), read and answered by
  handler/wire.py exactly as TorchServe's handler does, errors included.
- gRPC v2 (`predict`, KServe's `ModelInfer`): the same tensors from the SDK's InferRequest, answered as an
  InferResponse; a refusal is a gRPC status (INVALID_ARGUMENT, RESOURCE_EXHAUSTED for a 413, INTERNAL for a fault)
  whose details are the message.

Requests are computed on a pool of `workers` threads, so that the event loop keeps answering readiness and
metadata while images are upscaled. Two Upscalers serve them, one for small requests and one for large ones
(handler/admission.py: large requests take one place fewer than there are threads, and compute one at a time), so
a small request never waits behind a large one; each computes one image at a time on every core, while the other
requests decode and encode.
"""

import asyncio
import base64
import logging
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from grpc import StatusCode
from grpc_interceptor.exceptions import GrpcException
from kserve import Model
from kserve.protocol.infer_type import InferOutput, InferResponse, RequestedOutput, to_http_parameters
from prometheus_client import Counter

from handler import oip
from handler.admission import Admission
from handler.pipeline import check_answer_bytes, computed, plan, respond
from handler.protocol import ClientError, Trace
from handler.wire import error_body, read_upload, request_upload
from srcnn import Upscaler
from srcnn.codec import ImageError, encode_image
from srcnn.weights import SCALES, file_sha256, weight_file

logger = logging.getLogger("kserve.srcnn")  # under KServe's logging configuration
GRPC_V2 = "kserve-v2-grpc"
# Other client mistakes: INVALID_ARGUMENT; a 503 (no place for a large request) is UNAVAILABLE, which clients retry.
GRPC_STATUS = {413: StatusCode.RESOURCE_EXHAUSTED, 500: StatusCode.INTERNAL, 503: StatusCode.UNAVAILABLE}

# The service's metrics, as TorchServe's handler counts them (serving/metrics.yaml), on the predictor's /metrics.
REQUESTS = Counter("SRCNNRequests", "Requests by wire format, scale and outcome", ["wire", "scale", "outcome"])
MEGAPIXELS = Counter("SRCNNOutputMegapixels", "Megapixels answered", ["scale"])
STAGE_MILLISECONDS = Counter("SRCNNStageMilliseconds", "Milliseconds spent in each stage", ["stage"])


class GrpcRefusal(GrpcException):
    """A refused gRPC request: KServe's interceptor answers it with this status and the message as details."""


class SRCNNModel(Model):
    """The SRCNN service as a KServe model named `name`, on the weights in `weights` with handler settings
    `settings` (handler.protocol.Settings), computing at most `workers` requests at once."""

    def __init__(self, name, weights, settings, workers=2):
        super().__init__(name, return_response_headers=True)
        self.weights_dir, self.settings = Path(weights), settings
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="srcnn-request")
        self.places = tempfile.TemporaryDirectory(prefix="srcnn-admission-")  # this server's alone
        self.admission = Admission(
            self.places.name,
            settings.large_output_pixels,
            admitted=max(1, workers - 1),
            computing=settings.large_computing,
        )
        self.upscalers = self.upscaler = self.weights = None

    def load(self):
        files = {scale: weight_file(self.weights_dir, scale) for scale in SCALES}
        # Small and large requests on lanes of their own, so that a small one never waits for a large one's turn.
        self.upscalers = {
            large: Upscaler(self.weights_dir, self.settings.precision, self.settings.threads or None)
            for large in (False, True)
        }
        self.upscaler = self.upscalers[False]
        for upscaler in self.upscalers.values():
            upscaler.prepare()
        self.weights = {scale: f"{path.name};sha256={file_sha256(path)[:12]}" for scale, path in files.items()}
        choice = self.upscaler.choice
        logger.info(
            "SRCNN scales %s, engine %s: %s%s; %d lanes; %s",
            list(SCALES),
            choice.engine,
            choice.reason,
            " (cached measurement)" if choice.cached else "",
            len(self.upscaler.lanes),
            self.settings,
        )
        self.ready = True
        return self.ready

    def get_input_types(self):
        return [dict(tensor) for tensor in oip.INPUTS]

    def get_output_types(self):
        return [dict(tensor) for tensor in oip.OUTPUTS]

    async def predict(self, payload, headers=None, response_headers=None):
        """KServe's path: gRPC's ModelInfer (REST comes through `rest`, predictor/server.py)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, self.grpc, payload, headers or {}, response_headers)

    def grpc(self, payload, headers, response_headers):
        """The InferResponse to an InferRequest, or its refusal raised as a gRPC status."""
        trace = Trace(request_id=headers.get("x-request-id", ""), wire=GRPC_V2)
        try:
            response = self.serve(
                trace,
                headers,
                lambda: request_upload(oip_request(payload)),
                lambda image, job: self.tensors(payload, image, job, trace),
            )
        except ClientError as refusal:
            raise GrpcRefusal(refusal.message, GRPC_STATUS.get(refusal.status, StatusCode.INVALID_ARGUMENT)) from None
        if response_headers is not None:
            response_headers.update(trace.headers())
        return response

    def rest(self, body, headers, gone=None):
        """(status, body, content type, headers) answering a REST request (KServe v1, v2 or the service's own
        JSON) exactly as TorchServe's handler answers it (handler/wire.py); `gone()` says whether its client has
        closed the connection (a large request waiting for its turn is then dropped, uncomputed)."""
        trace = Trace(request_id=headers.get("x-request-id", ""))
        try:
            body, content_type, extra = self.serve(
                trace,
                headers,
                lambda: read_upload({"body": body}, headers),
                lambda image, job: respond(image, job, self.settings, self.upscaler.threads, self.name, trace),
                gone,
            )
        except ClientError as refusal:
            return refusal.status, error_body(refusal, trace.wire), "application/json", refusal.headers
        return 200, body, content_type, {**extra, **trace.headers()}

    def serve(self, trace, headers, read, reply, gone=None):
        """Run one request with its `headers`: `read()` gives its handler.wire.Upload, `reply(image, job)` its
        answer, returned; a refusal is raised as a ClientError (a fault as a 500), and so is a large request whose
        client is `gone()` before its turn. Either way one log line and the metrics."""
        try:
            with trace.timed("decode"):
                upload = read()
                trace.wire = GRPC_V2 if trace.wire == GRPC_V2 else upload.wire
                job = plan(upload, headers, self.settings, trace, self.weights)
            answer = computed(job, trace, self.admission, self.upscalers, reply, gone)
        except Exception as error:  # a client's mistake, or a bug: the request fails, the server goes on
            if not isinstance(error, (ClientError, ImageError)):
                logger.exception("request %s failed", trace.request_id or "-")
            refusal = ClientError.answering(error)
        else:
            self.close(trace)
            return answer
        if refusal.wire is not None and trace.wire != GRPC_V2:
            trace.wire = refusal.wire
        trace.status, trace.error = refusal.status, refusal.kind
        self.close(trace)
        raise refusal

    def tensors(self, request, image, job, trace):
        """The InferResponse answering a v2 request: its outputs, each binary or JSON as the request asked (always
        raw over gRPC), and what was done in its parameters."""
        binary_everywhere = request.from_grpc
        outputs, requested, size = [], [], 0
        for name, binary in job.upload.outputs:
            binary = binary or binary_everywhere
            encoded = (
                encode_image(image, job.media_type, self.settings.max_response_bytes, self.upscaler.threads)
                if name == oip.IMAGE
                else None
            )
            datatype, shape, values = oip.output_values(name, image, encoded)
            if datatype == "BYTES" and not binary:
                values = np.array([base64.b64encode(item).decode() for item in values], dtype=object)
            size += sum(len(item) for item in values) if datatype == "BYTES" else values.nbytes
            output = InferOutput(
                name, shape, datatype, parameters={"content_type": job.media_type} if name == oip.IMAGE else None
            )
            output.set_data_from_numpy(values.reshape(shape), binary_data=binary)
            outputs.append(output)
            requested.append(RequestedOutput(name, {"binary_data": binary}))
        check_answer_bytes(size, job.media_type, False, self.settings.max_response_bytes)
        return InferResponse(
            response_id=request.id or trace.request_id,
            model_name=self.name,
            infer_outputs=outputs,
            parameters=trace.done(),
            requested_outputs=None if request.from_grpc else requested,
            use_binary_outputs=binary_everywhere,
        )

    def close(self, trace):
        """One log line and the metrics of a request, answered or refused."""
        logger.info(trace.log_line())
        scale, outcome = trace.labels(SCALES)
        REQUESTS.labels(trace.wire, scale, outcome).inc()
        if trace.status < 300:
            MEGAPIXELS.labels(scale).inc(trace.output_size[0] * trace.output_size[1] / 1e6)
        for stage, milliseconds in trace.stages.items():
            STAGE_MILLISECONDS.labels(stage).inc(milliseconds)


def oip_request(request):
    """An oip.Request of the SDK's InferRequest, its inputs read and checked as TorchServe's handler reads them."""
    inputs = []
    for sent in request.inputs:
        oip.check_datatype(sent.name, sent.datatype)
        raw = sent._raw_data  # binary tensors: the SDK keeps their bytes here (kserve 0.21), `data` stays None
        if raw is not None:
            values = oip.bytes_elements(sent.name, raw) if sent.datatype == "BYTES" else np.frombuffer(raw, np.uint8)
        else:
            values = oip.json_elements(sent.name, sent.datatype, sent.data)
        inputs.append(oip.tensor(sent.name, sent.datatype, list(sent.shape), values, plain(sent.parameters)))
    parameters = plain(request.parameters)
    outputs = tuple(
        (
            wanted.name,
            bool(wanted.binary_data if wanted.binary_data is not None else parameters.get("binary_data_output")),
        )
        for wanted in request.request_outputs or ()
    )
    return oip.Request(request.id or None, parameters, tuple(inputs), outputs, request.use_binary_outputs)


def plain(parameters):
    """Parameters as a dict of plain values, from REST's dict or gRPC's map of InferParameter."""
    if not parameters:
        return {}
    return dict(parameters) if isinstance(parameters, dict) else to_http_parameters(parameters)
