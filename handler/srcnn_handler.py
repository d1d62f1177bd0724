"""TorchServe handler for SRCNN: request -> decode -> `upscale()` -> encode.

Each request of a batch is handled on its own (sizes differ) and fails on its own: a client mistake answers
that request alone with a 4xx and a JSON body {"code", "type", "message"} ({"error"} for KServe v2); the batch
and the worker live on. TorchServe's gRPC frontend reads only a batch-wide status, so a refused gRPC request
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
import logging
import os
import signal
import time
from http import HTTPStatus
from pathlib import Path

import torch
from ts.metrics.metric_type_enum import MetricTypes
from ts.torch_handler.base_handler import BaseHandler
from ts.utils.util import PredictionException

from handler.protocol import (ClientError, Job, Settings, Trace, choose_media_type, factor_label, header,
                              requested_sizing, what_fits)
from handler.wire import GRPC, answer, error_body, is_grpc, read_upload
from srcnn import Upscaler
from srcnn.codec import ImageError, check_encodable, decode_image, encode_image
from srcnn.scaling import ScaleError, output_size, parse_scale, passes_between
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


class SRCNNHandler(BaseHandler):
    """Loads the ×2, ×3 and ×4 weights shipped in the archive and answers each request with its upscaled image."""

    def initialize(self, context):
        # TorchServe's worker reads this on every request: bodies then reach preprocess as the bytes sent, so a
        # malformed JSON body becomes our 400 with its position instead of a logged traceback and a raw payload.
        os.environ["TS_DECODE_INPUT_REQUEST"] = "false"
        logging.getLogger("ts.service").addFilter(not_a_refusal)
        # `kill -USR1 <worker pid>` writes the stack of each of the worker's threads to its stderr, which TorchServe
        # copies into the model log; the worker goes on (a request that seems stuck shows where it is).
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        self.model_name = context.model_name
        self.counting = True  # until a server whose metrics_config lacks serving/metrics.yaml's metrics says no
        self.settings = Settings.from_yaml((context.model_yaml_config or {}).get("handler"))
        gpu = context.system_properties.get("gpu_id")
        self.device = torch.device(f"cuda:{gpu}" if torch.cuda.is_available() and gpu is not None else "cpu")
        weights = Path(context.system_properties["model_dir"]) / "weights"
        files = {scale: weight_file(weights, scale) for scale in SCALES}
        missing = [scale for scale, path in files.items() if not path.exists()]
        if missing:
            raise RuntimeError(f"weights for ×{missing} are missing: every scale needs all of {list(SCALES)} "
                               f"(srcnn.scaling.passes), and the archive has "
                               f"{sorted(set(SCALES) - set(missing))} under {weights}")
        parse_scale(self.settings.default_scale)  # a ScaleError stops the worker with the range in its message
        # A precision the device cannot run, or int8 without its calibration, stops the worker the same way.
        # "auto" measures the candidates once per machine (srcnn.choice) and logs the choice and its reason.
        self.upscaler = Upscaler(weights, self.settings.precision, self.settings.threads, self.device)
        self.upscaler.prepare()
        choice = self.upscaler.choice
        # The weights' identity in answers and logs: file name and the start of its sha256 (also in the sidecar).
        self.weights = {scale: f"{path.name};sha256={file_sha256(path)[:12]}" for scale, path in files.items()}
        self.initialized = True
        logger.info("SRCNN scales %s on %s, engine %s: %s%s; %d lanes; %s", sorted(self.upscaler.lanes[0]), self.device,
                    choice.engine, choice.reason, " (cached measurement)" if choice.cached else "",
                    len(self.upscaler.lanes), self.settings)
        if choice.refused:
            logger.info("SRCNN engines not chosen: %s",
                        "; ".join(f"{name} {why}" for name, why in choice.refused.items()))

    def handle(self, data, context):
        # Busy from the upload's decoding to the answer's encoding, so that another worker computing meanwhile
        # leaves this one its core (srcnn.cores).
        with self.upscaler.cores.busy():
            return super().handle(data, context)

    def preprocess(self, data):
        """One Job (the decoded image, its scale and answer format) or ClientError per request."""
        self.traces = [Trace(request_id=self.context.get_request_id(index) or "") for index in range(len(data))]
        return [self._per_request("decode", self._parse, index, row) for index, row in enumerate(data)]

    def inference(self, jobs):
        """One upscaled PIL image (with its media type) or ClientError per request."""
        return [self._per_request("upscale", self._upscale, index, job) for index, job in enumerate(jobs)]

    def postprocess(self, results):
        """One body per request: the encoded image with the headers that say what was done, or the JSON error
        with its status; either way one log line."""
        bodies = [self._per_request("encode", self._encode, index, result) for index, result in enumerate(results)]
        for index, (body, trace) in enumerate(zip(bodies, self.traces)):
            if isinstance(body, ClientError):
                trace.status, trace.error, trace.wire = body.status, body.kind, body.wire or trace.wire
                self.context.set_response_status(body.status, HTTPStatus(body.status).phrase, index)
                self.context.set_response_content_type(index, "application/json")
                bodies[index] = error_body(body, trace.wire)
            else:
                for name, value in trace.headers().items():
                    self.context.set_response_header(index, name, value)
            logger.info(trace.log_line())
            self._count(trace)
        if len(bodies) == 1 and self.traces[0].wire == GRPC and self.traces[0].status != 200:
            # TorchServe maps 413 to RESOURCE_EXHAUSTED and 400 to INVALID_ARGUMENT, but 415 and 422 to INTERNAL:
            # every other client mistake goes out as 400 (the JSON in the description keeps the real code).
            status = self.traces[0].status
            raise grpc_refusal(bodies[0].decode(), status if status in (400, 413) or status >= 500 else 400)
        return bodies

    def _count(self, trace):
        """Add one request to the service's metrics; a server that does not declare them gets one warning."""
        if not self.counting:
            return
        model = [self.model_name, "Model"]
        scale = trace.scale if trace.scale in {str(scale) for scale in SCALES} else "other" if trace.scale else "-"
        outcome = "2xx" if trace.status < 300 else "5xx" if trace.status >= 500 else trace.error
        try:
            counter = self.context.metrics.get_metric
            counter("SRCNNRequests", MetricTypes.COUNTER).add_or_update(1, [*model, trace.wire, scale, outcome],
                                                                       trace.request_id)
            if trace.status < 300:
                megapixels = trace.output_size[0] * trace.output_size[1] / 1e6
                counter("SRCNNOutputMegapixels", MetricTypes.COUNTER).add_or_update(megapixels, [*model, scale],
                                                                                    trace.request_id)
            for stage, milliseconds in trace.stages.items():
                counter("SRCNNStageMilliseconds", MetricTypes.COUNTER).add_or_update(
                    milliseconds, [*model, stage], trace.request_id)
        except Exception:  # MetricsCacheKeyError and kin: the server's metrics_config is not serving/metrics.yaml
            self.counting = False
            logger.warning("the server's metrics_config does not declare the SRCNN metrics (serving/metrics.yaml "
                           "does): requests are not counted", exc_info=True)

    def _per_request(self, stage, step, index, item):
        """Run one stage for one request, timing it; client errors and unexpected failures stay with that
        request."""
        if isinstance(item, ClientError):
            return item
        started = time.perf_counter()
        try:
            return step(index, item)
        except ClientError as error:
            return error
        except ImageError as error:
            return ClientError.from_image_error(error)
        except Exception:  # a bug must not fail the other requests of the batch nor kill the worker
            logger.exception("request %d failed", index)
            return ClientError(500, "internal_error", "the server failed on this image; the log has the details")
        finally:
            self.traces[index].stages[stage] = (time.perf_counter() - started) * 1000

    def _parse(self, index, row):
        headers = self.context.get_all_request_header(index) or {}
        if is_grpc(headers):  # known before the body is read, so that a refusal of it is a gRPC status too
            self.traces[index].wire = GRPC
        upload = read_upload(row, headers)
        trace = self.traces[index]
        trace.wire = upload.wire
        scale, size = requested_sizing(headers, upload, self.settings.default_scale)
        media_type = choose_media_type(header(headers, "Accept"))
        limits = self.settings
        image = decode_image(upload.data, limits.max_input_pixels)
        try:
            output = output_size(image.size, scale, size)
        except ScaleError as error:
            raise ClientError(422, "invalid_size", str(error)) from None
        trace.scale = factor_label(scale, image.size, output)
        trace.media_type, trace.input_size, trace.output_size = media_type, image.size, output
        trace.weights = ",".join(self.weights[trained] for trained in passes_between(image.size, output)) or "none"
        output_pixels = output[0] * output[1]
        if output_pixels > limits.max_output_pixels:
            raise ClientError(413, "output_too_large", f"×{trace.scale} of a {image.width}×{image.height} image "
                              f"gives {output[0]}×{output[1]} = {output_pixels:,} pixels; the limit is "
                              f"{limits.max_output_pixels:,}: {what_fits(image.size, scale, output, limits)}")
        check_encodable(output, media_type)
        return Job(image, output, media_type, upload)

    def _upscale(self, index, job):
        return self.upscaler.upscale(job.image, size=job.size), job

    def _encode(self, index, result):
        image, job = result
        encoded = encode_image(image, job.media_type, self.settings.max_response_bytes, self.upscaler.threads_now())
        body, content_type = answer(encoded, job.media_type, job.upload, self.model_name, self.traces[index].request_id)
        if len(body) > self.settings.max_response_bytes:
            wrapped = " in base64 JSON" if content_type == "application/json" else ""
            raise ClientError(413, "response_too_large",
                              f"the answer is {len(body):,} bytes ({job.media_type}{wrapped}), over the limit of "
                              f"{self.settings.max_response_bytes:,}; ask for image/jpeg or send a smaller image")
        self.context.set_response_content_type(index, content_type)
        return body
