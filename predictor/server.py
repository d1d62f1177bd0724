"""What the predictor adds to KServe's FastAPI app: its own REST inference routes, a request body limit and a
budget for the bodies held at once, and no traceback in the log for a client's mistake.

The REST routes are the predictor's own, registered before KServe's (the first matching route serves), because
KServe 0.21's v2 route fails on what the protocol's clients send by default: a binary BYTES tensor that is not
UTF-8 (an image file) is a 500 "Failed to encode", a JSON body without a Content-Type (tritonclient sends none) a
400 that asks for the binary header, and a shape that does not fit the data a 500. Readiness, metadata, health,
metrics and gRPC stay KServe's.
"""

import asyncio
import logging
import threading

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from kserve.errors import InvalidInput, ModelNotFound

from handler.protocol import ClientError, Trace
from handler.wire import KSERVE_V1, KSERVE_V2, error_body

CLIENT_MISTAKES = (InvalidInput, ModelNotFound, ClientError)  # refused by KServe's own handlers too
WATCH_SECONDS = 0.5  # how often a request being served looks whether its client has gone


def install(app, model, request_limit):
    """Add the REST routes of `model` (predictor.model.SRCNNModel), the body limit of `request_limit` bytes, the
    budget of bodies held at once (BODY_BUDGET_REQUESTS of them at the limit) and the log filter to KServe's
    `app`."""

    async def infer(model_name: str, request: Request, model_version: str | None = None):
        if model_name != model.name:
            return JSONResponse(
                {"error": f"no model {model_name[:40]!r} here; this server serves {model.name!r}"}, status_code=404
            )
        body, headers = await request.body(), dict(request.headers)
        loop, gone = asyncio.get_running_loop(), threading.Event()
        watching = asyncio.create_task(watch(request, gone))
        try:
            status, answer, content_type, extra = await loop.run_in_executor(
                model.pool, model.rest, body, headers, gone.is_set
            )
        finally:
            watching.cancel()
        return Response(answer, status_code=status, media_type=content_type, headers=extra)

    for path in (
        "/v1/models/{model_name}:predict",
        "/v2/models/{model_name}/infer",
        "/v2/models/{model_name}/versions/{model_version}/infer",
    ):
        app.add_api_route(path, infer, methods=["POST", "PUT"], include_in_schema=False)  # PUT: curl -T

    async def refused_while_read(request, error):
        """A body refused while it was read (BodyLimit): too large, too slow, or past the budget."""
        return refusal(error, request.url.path, model.close)

    app.add_exception_handler(ClientError, refused_while_read)
    app.add_middleware(BodyLimit, limit=request_limit, budget=BODY_BUDGET_REQUESTS * request_limit, close=model.close)
    logging.getLogger("kserve").addFilter(without_client_tracebacks)


async def watch(request, gone):
    """Set `gone` once the client of `request` (its body read) has closed the connection."""
    while not await request.is_disconnected():
        await asyncio.sleep(WATCH_SECONDS)
    gone.set()


def refusal(error, path, close):
    """The response to a request refused by BodyLimit (a ClientError), its body in the wire format of its route
    (handler.wire.error_body), after its log line and metrics (`close`, predictor.model.SRCNNModel.close)."""
    wire = KSERVE_V1 if path.startswith("/v1/") else KSERVE_V2
    close(Trace(wire=wire, status=error.status, error=error.kind))
    body = error_body(error, wire)
    return Response(body, status_code=error.status, media_type="application/json", headers=error.headers)


def without_client_tracebacks(record):
    """KServe logs every refusal with its traceback; a client's mistake keeps its one line and loses the stack."""
    if record.exc_info and isinstance(record.exc_info[1], CLIENT_MISTAKES):
        record.exc_info, record.exc_text = None, None
    return True


# The longest a request's body may pause before it is refused (408) and its connection closed: a client that sends
# headers and then a byte now and then would otherwise hold a connection and its buffers for as long as it likes.
BODY_IDLE_SECONDS = 20
# The bodies held at once, in requests at the limit: the predictor computes minWorkers (5) at once and holds each
# body until its answer is sent; the pod's memory counts them (tests/test_deploy.py).
BODY_BUDGET_REQUESTS = 6
BODY_RETRY_SECONDS = 5  # the Retry-After of a body refused for the budget: about one large request's upload


class BodyLimit:
    """ASGI middleware: a request body of more than `limit` bytes is refused with 413 (from its Content-Length
    before it is read, else as soon as the bytes received pass the limit), and one that pauses for more than
    BODY_IDLE_SECONDS between two chunks with 408. So that memory stays bounded, the bodies of the requests in
    progress hold at most `budget` bytes: one that would pass it is refused with 503 server_busy and a Retry-After
    (from its Content-Length before it is read, else as its bytes arrive). Each refusal gets its log line and
    metrics from `close`."""

    def __init__(self, app, limit, budget, close):
        self.app, self.limit, self.budget, self.close = app, limit, budget, close
        self.held = 0  # bytes reserved by the requests in progress (one event loop: no lock)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        declared = int(declared) if declared.isdigit() else 0
        if declared > self.limit:
            return await self.refuse(scope, send, self.too_large())
        if self.held + declared > self.budget:
            return await self.refuse(scope, send, self.busy())
        self.held += declared
        reserved, received, complete = declared, 0, False

        async def counted():
            nonlocal reserved, received, complete
            if complete:  # the body is in: what comes next (a disconnect) may take as long as the answer does
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), BODY_IDLE_SECONDS)
            except TimeoutError:
                raise ClientError(
                    408,
                    "request_timeout",
                    f"the request body paused for over {BODY_IDLE_SECONDS} s "
                    f"after {received:,} bytes; send it without pauses",
                ) from None
            received += len(message.get("body", b""))
            complete = not message.get("more_body", False)
            if received > self.limit:
                raise self.too_large()
            if received > reserved:  # more than its Content-Length said, or none was given
                if self.held + received - reserved > self.budget:
                    raise self.busy()
                self.held, reserved = self.held + received - reserved, received
            return message

        try:
            await self.app(scope, counted, send)
        finally:
            self.held -= reserved

    def too_large(self):
        return ClientError(
            413,
            "request_too_large",
            f"the request body is over the limit of {self.limit:,} bytes; send a smaller image",
        )

    def busy(self):
        refusal = ClientError(
            503,
            "server_busy",
            f"the server holds as many request bodies as it may ({self.budget:,} bytes); "
            f"send it again in {BODY_RETRY_SECONDS} s",
        )
        refusal.headers["Retry-After"] = str(BODY_RETRY_SECONDS)
        return refusal

    async def refuse(self, scope, send, error):
        """Answer `error` before the body is read."""
        await refusal(error, scope["path"], self.close)(scope, receive=None, send=send)
