"""srcnn.cores: a process's share of the cores among the processes upscaling at the moment, each forced here by
holding (or not) the lock a busy process holds."""

import fcntl
import os
import subprocess
import sys

import pytest

from srcnn.cores import CoreShare


@pytest.fixture
def share(tmp_path):
    return CoreShare(cores=4, folder=tmp_path / "busy")


def hold(share, name):
    """Another process's busy file, locked as its holder would (a second open file: flock sees two owners)."""
    share.folder.mkdir(exist_ok=True)
    handle = open(share.folder / name, "w")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def test_alone_a_process_has_every_core(share):
    with share.busy():
        assert share.busy_processes() == 1 and share.allowed() == 4
    assert share.allowed() == 4  # not busy: nobody to share with either


def test_busy_processes_divide_the_cores(share):
    others = [hold(share, str(pid)) for pid in (os.getppid(), 1)]  # pids that are alive
    with share.busy():
        assert share.busy_processes() == 3 and share.allowed() == 1
        others.pop().close()
        assert share.busy_processes() == 2
    for other in others:
        other.close()


def test_more_busy_processes_than_cores_still_leave_one_thread(share):
    others = [hold(share, f"{pid}") for pid in (os.getppid(), 1, os.getpid() + 10**6, os.getpid() + 10**6 + 1, 2)]
    with share.busy():
        assert share.busy_processes() == 6 and share.allowed() == 1
    for other in others:
        other.close()


def test_busy_is_reentrant_and_ends_with_the_outermost(share):
    watcher = CoreShare(cores=4, folder=share.folder)  # sees this process's file as another's would
    with share.busy():
        with share.busy():
            pass
        assert lock_held(share.folder / str(os.getpid()))
    assert not lock_held(share.folder / str(os.getpid()))
    assert watcher.busy_processes() == 1  # the asker's minimum


def lock_held(path):
    probe = subprocess.run([sys.executable, "-c", f"import fcntl; fcntl.flock(open({str(path)!r}), "
                            "fcntl.LOCK_SH | fcntl.LOCK_NB)"], capture_output=True)
    return probe.returncode != 0


def test_a_dead_workers_file_is_removed_and_not_counted(share):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    share.folder.mkdir()
    (share.folder / dead.stdout.strip()).write_text("")
    with share.busy():
        assert share.busy_processes() == 1
    assert sorted(os.listdir(share.folder)) == [str(os.getpid())]


def test_a_folder_it_cannot_write_means_every_core(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")
    share = CoreShare(cores=3, folder=blocked / "busy")
    with share.busy():
        assert share.allowed() == 3
