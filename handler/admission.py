"""Admission of large requests, so that small ones are never stuck behind them.

A request is large when its answer has more than `large_output_pixels` pixels (Settings). Among all the workers of
one server, at most `admitted` large requests are taken at once, one worker fewer than the server has, so a small
request always finds a worker that is not holding a large one; a large request over that is refused at once with a
503 `server_busy` and a Retry-After. Of those taken, at most `computing` compute at a time and the others wait
their turn, holding their decoded image but no core and no answer-sized memory. Small requests are neither counted
nor held.

The workers are processes, so the count lives in the file system: each of the `admitted` places and `computing`
turns is a file in `folder`, taken with an exclusive `flock` (a worker that dies lets go of its files with its
descriptors, so nothing stays taken).
"""

import fcntl
import math
import time
from contextlib import contextmanager
from pathlib import Path

from handler.protocol import ClientError

POLL_SECONDS = 0.05  # how often a large request waiting for its turn looks again
FIRST_RATE = 1e6  # output pixels a second assumed before the first request is computed, for a Retry-After


class Admission:
    """The places and turns of large requests in `folder`, shared by every worker of one server (the same folder)."""

    def __init__(self, folder, large_output_pixels, admitted, computing=1):
        self.folder = Path(folder)
        self.large_output_pixels, self.admitted, self.computing = large_output_pixels, admitted, computing
        self.output_pixels_per_second = FIRST_RATE  # this process's, measured over each turn
        self.folder.mkdir(parents=True, exist_ok=True)

    def is_large(self, output_size):
        return output_size[0] * output_size[1] > self.large_output_pixels

    @contextmanager
    def place(self, output_size):
        """Hold a place for a request whose answer is `output_size` (nothing for a small one) until the block ends,
        giving whether it is large; a large request finding every place taken is refused with a 503 whose
        Retry-After is about the time one answer of its size takes here (a place frees when the large request
        computing ends). Then wait for a turn to compute (`turn`)."""
        if not self.is_large(output_size):
            yield False
            return
        held = self._take("place", self.admitted)
        if held is None:
            seconds = max(1, math.ceil(output_size[0] * output_size[1] / self.output_pixels_per_second))
            refusal = ClientError(
                503,
                "server_busy",
                f"the server is computing or holding {self.admitted} large requests (answers over "
                f"{self.large_output_pixels:,} pixels), the most it takes at once; retry in {seconds} s, or ask "
                "for a smaller answer",
            )
            refusal.headers["Retry-After"] = str(seconds)
            raise refusal
        try:
            yield True
        finally:
            held.close()  # closing lets go of the lock

    @contextmanager
    def turn(self, output_size, gone=None):
        """Compute an answer of `output_size` in the block: a large one once one of the `computing` turns is free,
        holding it until the block ends; if `gone()` says its client has closed the connection meanwhile, it is
        dropped uncomputed (ClientError 499 `client_gone`). The block's time gives this process's rate."""
        held = None
        if self.is_large(output_size):
            while (held := self._take("turn", self.computing)) is None:
                if gone is not None and gone():
                    raise ClientError(
                        499, "client_gone", "the client closed the connection while its large request waited"
                    )
                time.sleep(POLL_SECONDS)
        started = time.perf_counter()
        try:
            yield
            self.output_pixels_per_second = output_size[0] * output_size[1] / (time.perf_counter() - started)
        finally:
            if held is not None:
                held.close()

    def _take(self, kind, count):
        """An open file holding the lock of one of the `count` files of `kind`, or None when all are held."""
        for index in range(count):
            handle = open(self.folder / f"{kind}-{index}", "a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            return handle
        return None
