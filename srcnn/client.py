"""The `srcnn upscale --server URL` side: one image file through a running TorchServe, over HTTP with requests.

Kept apart from the image math: nothing else in `srcnn` imports requests.
"""

import json
import time

import requests

RETRY_STATUSES = (503, 507)  # a worker being started or replaced, a server busy with large requests, out of memory
RETRY_DELAYS = (0.5, 1, 2, 4, 8)  # seconds before each retry: about 15 s in all before giving up
LONGEST_RETRY_AFTER = 600  # seconds: a server's Retry-After is waited for, up to this


class Refused(Exception):
    """The server answered with an error: `status` and the message of its JSON body."""

    def __init__(self, status, message):
        super().__init__(f"the server answered {status}: {message}")
        self.status = status


def predictions_url(server, model="srcnn"):
    """TorchServe's inference URL for `model` on `server` (http://host:port); a full .../predictions/... URL is
    kept as it is."""
    server = server.rstrip("/")
    return server if "/predictions/" in server else f"{server}/predictions/{model}"


def server_message(response):
    """The message of an error answer: the JSON error's "message" (or KServe's "error"), else its text."""
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        return response.text.strip()[:300] or response.reason
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)
    return str(body)


def remote_upscale(session, url, data, headers, sleep=time.sleep):
    """The answer's bytes for the image file `data`, sent with `headers` (X-Scale or X-Size, Accept); retried
    after RETRY_DELAYS, or the answer's Retry-After (seconds) when longer, on RETRY_STATUSES and on connection
    failures; a Refused for any other error answer."""
    for delay in (*RETRY_DELAYS, None):
        asked = 0
        try:
            response = session.put(url, data=data, headers=headers, timeout=600)
        except requests.ConnectionError as error:
            failure = Refused("no answer", f"could not connect to {url} ({type(error).__name__})")
        else:
            if response.status_code == 200:
                return response.content
            failure = Refused(response.status_code, server_message(response))
            if response.status_code not in RETRY_STATUSES:
                raise failure
            after = response.headers.get("Retry-After", "")
            asked = min(int(after), LONGEST_RETRY_AFTER) if after.isdigit() else 0
        if delay is None:
            raise failure
        sleep(max(delay, asked))
