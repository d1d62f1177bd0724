"""How a request's work runs on the machine's cores: cut into stripes of rows (`stripes`), taken by one thread a
lane (`in_stripes`: a lane is one single-threaded set of engines, srcnn.api), on the process's one pool of threads
(`thread_pool`). The image's bands (srcnn.bands) and the PNG encoder's rows (srcnn.png) alike.

Processes computing at the same time (two TorchServe workers, a worker beside `srcnn upscale`) each use every core
they are allowed, and the operating system divides the cores among their threads: measured as fast as dividing
them ourselves, which the project did before (docs/decisions.md, D11).
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor


def machine_cores():
    """The cores this process may run on (its CPU affinity, which a container's cpuset narrows)."""
    return len(os.sched_getaffinity(0))


BAND = 64  # rows a bicubic resample or the merge computes, and the PNG encoder filters and deflates, at a time


def stripes(height, unit, lanes):
    """(top, bottom) row ranges that split `height` rows among `lanes` threads: multiples of `unit` rows (the
    bands of the plane the stripes end on, so that two stripes seldom compute the same band: srcnn.bands.
    stripe_unit), about four a lane so that threads finishing early take more."""
    units = -(-height // unit)
    count = min(units, 4 * lanes)
    edges = [round(units * index / count) * unit for index in range(count + 1)]
    return [(top, min(height, bottom)) for top, bottom in zip(edges, edges[1:])]


def in_stripes(height, unit, lanes, compute):
    """Call `compute(lane, top, bottom)` for each of `stripes(height, unit, len(lanes))`, one thread a lane (each
    lane, such as a map of engines, used by one thread at a time); a failure in any thread stops the others at
    their next stripe and is raised here."""
    work, taking, failed = iter(stripes(height, unit, len(lanes))), threading.Lock(), threading.Event()

    def run(lane):
        try:
            while not failed.is_set():
                with taking:
                    top, bottom = next(work, (None, None))
                if top is None:
                    return
                compute(lane, top, bottom)
        except BaseException:
            failed.set()
            raise

    others = [thread_pool(len(lanes) - 1).submit(run, lane) for lane in lanes[1:]]
    try:
        run(lanes[0])  # on the calling thread
    finally:
        for done in others:
            done.result()


_pool = (0, None)  # (threads, executor): one for the process, grown as needed
_pool_lock = threading.Lock()


def thread_pool(threads):
    """The process's pool of at least `threads` threads. The same threads serve every call, so the allocator's
    per-thread arenas stay as few as the threads (new threads a request grew a worker's memory for hundreds of
    requests; docs/decisions.md, D11)."""
    global _pool
    with _pool_lock:
        if _pool[0] < threads:
            if _pool[1] is not None:
                _pool[1].shutdown(wait=False)  # its threads end once idle
            _pool = (threads, ThreadPoolExecutor(threads, thread_name_prefix="srcnn-lane"))
        return _pool[1]
