"""How many threads compute, and on what: the machine's cores shared among the processes that are upscaling at
the moment, the gate that holds a request's threads to its share, the stripes of rows those threads take, and the
process's one pool of them.

A TorchServe worker (or `srcnn upscale`, or a program using `Upscaler`) marks itself busy while it handles a
request (`CoreShare.busy`): it holds an exclusive `flock` on a file named by its pid in a folder every such
process on the machine uses. `allowed()` counts the files locked at that moment and gives this process its
share of the cores, `cores // busy` (at least 1). So one large request on an idle server computes on every core,
and two workers busy at once get half each: no more threads compute than there are cores, whatever the load
(docs/decisions.md, D11). The count is taken again before every band of rows (srcnn.bands), so a request that
arrives mid-way gets its share within one band. Processes of other users keep files of their own and are not
counted.

A request's work is cut into stripes of rows (`stripes`) taken by one thread a lane (`in_stripes`): the image's
bands (srcnn.bands) and the PNG encoder's rows (srcnn.png) alike, on the process's one pool (`thread_pool`).
"""

import fcntl
import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

RECOUNT_SECONDS = 0.02  # how often a thread held back by `Gate` looks at the count again


def machine_cores():
    """The cores this process may run on (its CPU affinity, which a container's cpuset narrows)."""
    return len(os.sched_getaffinity(0))


def default_folder():
    return Path(tempfile.gettempdir()) / f"srcnn-busy-{os.getuid()}"


def process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class CoreShare:
    """`cores` (default: `machine_cores()`) shared among the busy processes whose files are in `folder`."""

    def __init__(self, cores=None, folder=None):
        self.cores = cores or machine_cores()
        self.folder = Path(folder or default_folder())
        self._lock = threading.Lock()
        self._depth = 0  # nested busy() calls of this process: threads and an Upscaler inside a handler
        self._file = None

    @contextmanager
    def busy(self):
        """Count this process as busy until the block ends (re-entrant, thread-safe). Where the folder cannot be
        written this process counts as the only one busy: it computes on every core, as without sharing."""
        with self._lock:
            if self._depth == 0:
                self._file = self._hold()
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._file is not None:
                    self._file.close()  # closing drops the lock
                    self._file = None

    def _hold(self):
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            handle = open(self.folder / str(os.getpid()), "w")
        except OSError:
            return None
        fcntl.flock(handle, fcntl.LOCK_EX)  # our own file: nobody else takes it, so this does not wait
        return handle

    def busy_processes(self):
        """How many processes hold their file locked now: at least 1 (the asker)."""
        busy = 0
        try:
            names = os.listdir(self.folder)
        except OSError:
            return 1
        for name in names:
            if name == str(os.getpid()):
                busy += self._file is not None
                continue
            try:
                with open(self.folder / name, "r") as handle:
                    try:
                        fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    except BlockingIOError:
                        busy += 1
                        continue
                if name.isdigit() and not process_alive(int(name)):
                    os.unlink(self.folder / name)  # a worker that died: its file would only slow the count
            except OSError:
                continue
        return max(1, busy)

    def allowed(self):
        """The threads this process may compute on now: its share of the cores among the busy processes (a
        count of a few files, taken afresh each time: a band takes far longer)."""
        return max(1, self.cores // self.busy_processes())


class Gate:
    """At most `allowed()` of a request's threads compute at once; the others wait their turn (`slot()`)."""

    def __init__(self, allowed):
        self.allowed = allowed
        self.running = 0
        self._changed = threading.Condition()

    @contextmanager
    def slot(self):
        with self._changed:
            # A share shrinks when another process gets busy, and grows back without telling: look again soon.
            while self.running >= self.allowed():
                self._changed.wait(RECOUNT_SECONDS)
            self.running += 1
        try:
            yield
        finally:
            with self._changed:
                self.running -= 1
                self._changed.notify()


CORES = CoreShare()  # the one this process shares (SRCNN's every entry point computes under it)


def stripes(height, unit, lanes):
    """(top, bottom) row ranges that split `height` rows among `lanes` threads: multiples of `unit` rows (the
    bands of every plane a stripe reads, so no stripe computes a band another also computes), about four a lane
    so that threads finishing early take more."""
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

