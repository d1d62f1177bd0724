"""The machine's cores, shared among the processes that are upscaling at the moment.

A TorchServe worker (or `srcnn upscale`, or a program using `Upscaler`) marks itself busy while it handles a
request (`CoreShare.busy`): it holds an exclusive `flock` on a file named by its pid in a folder every such
process on the machine uses. `allowed()` counts the files locked at that moment and gives this process its
share of the cores, `cores // busy` (at least 1). So one large request on an idle server computes on every core,
and two workers busy at once get half each: no more threads compute than there are cores, whatever the load
(docs/decisions.md, D11). The count is taken again before every band of rows (srcnn.upscale), so a request that
arrives mid-way gets its share within one band. Processes of other users keep files of their own and are not
counted.
"""

import fcntl
import os
import tempfile
import threading
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
