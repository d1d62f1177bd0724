"""What the predictor adds to KServe's FastAPI app: its own REST inference routes, a request body limit, and no
traceback in the log for a client's mistake.

The REST routes are the predictor's own, registered before KServe's (the first matching route serves), because
KServe 0.21's v2 route fails on what the protocol's clients send by default: a binary BYTES tensor that is not
UTF-8 (an image file) is a 500 "Failed to encode", a JSON body without a Content-Type (tritonclient sends none) a
400 that asks for the binary header, and a shape that does not fit the data a 500. Readiness, metadata, health,
metrics and gRPC stay KServe's.
"""

import asyncio
import json
import logging
import threading

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from kserve.errors import InvalidInput, ModelNotFound

from handler.protocol import ClientError

CLIENT_MISTAKES = (InvalidInput, ModelNotFound, ClientError)  # refused by KServe's own handlers too
WATCH_SECONDS = 0.5  # how often a request being served looks whether its client has gone


def install(app, model, request_limit):
    """Add the REST routes of `model` (predictor.model.SRCNNModel), the body limit of `request_limit` bytes and
    the log filter to KServe's `app`."""

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
    app.add_exception_handler(ClientError, too_large)
    app.add_middleware(BodyLimit, limit=request_limit)
    logging.getLogger("kserve").addFilter(without_client_tracebacks)


async def watch(request, gone):
    """Set `gone` once the client of `request` (its body read) has closed the connection."""
    while not await request.is_disconnected():
        await asyncio.sleep(WATCH_SECONDS)
    gone.set()


async def too_large(request, error):
    """A body refused while it was read (BodyLimit): too large, or too slow."""
    return JSONResponse({"error": error.message}, status_code=error.status)


def without_client_tracebacks(record):
    """KServe logs every refusal with its traceback; a client's mistake keeps its one line and loses the stack."""
    if record.exc_info and isinstance(record.exc_info[1], CLIENT_MISTAKES):
        record.exc_info, record.exc_text = None, None
    return True


# The longest a request's body may pause before it is refused (408) and its connection closed: a client that sends
# headers and then a byte now and then would otherwise hold a connection and its buffers for as long as it likes.
BODY_IDLE_SECONDS = 20


class BodyLimit:
    """ASGI middleware: a request body of more than `limit` bytes is refused with 413 (from its Content-Length
    before it is read, else as soon as the bytes received pass the limit), and one that pauses for more than
    BODY_IDLE_SECONDS between two chunks with 408."""

    def __init__(self, app, limit):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.limit:
            return await self.too_large(send)
        received, complete = 0, False

        async def counted():
            nonlocal received, complete
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
                raise ClientError(413, "request_too_large", self.message())
            return message

        await self.app(scope, counted, send)

    def message(self):
        return f"the request body is over the limit of {self.limit:,} bytes; send a smaller image"

    async def too_large(self, send):
        body = json.dumps({"error": self.message()}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-error-type", b"request_too_large"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
