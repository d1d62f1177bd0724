"""The KServe predictor (`python -m predictor`) as a background server: started, waited for until the model is
ready, and stopped, with its log and pid file in a folder of its own."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests

from serving import MODEL_NAME
from serving.server import port_is_free
from srcnn.files import REPOSITORY


@dataclass
class Predictor:
    """One predictor on `http_port` (REST) and `grpc_port` (gRPC); `workdir`/logs holds its predictor.log,
    `tmpdir` (default $TMPDIR, as TorchServe's launcher keeps its own) its pid file; `options` are more of `python -m
    predictor`'s (such as `--model-config FILE`)."""

    http_port: int = 8085
    grpc_port: int = 8086
    workdir: Path = REPOSITORY
    tmpdir: Path | None = None
    options: tuple = ()

    @property
    def inference_url(self):
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def log(self):
        return Path(self.workdir) / "logs" / "predictor.log"

    @property
    def pid_file(self):
        return Path(self.tmpdir or tempfile.gettempdir()) / ".srcnn_predictor.pid"

    def pid(self):
        """The pid of the predictor this folder started, if it still runs."""
        try:
            pid = int(self.pid_file.read_text())
            return pid if "predictor" in psutil.Process(pid).cmdline() else None
        except (OSError, ValueError, psutil.Error):
            return None

    def start_problem(self):
        """One line saying why this predictor cannot start, or None."""
        if self.pid():
            return f"the KServe predictor is already running (pid {self.pid()}): stop it with `make stop`"
        for port in (self.http_port, self.grpc_port):
            if not port_is_free("0.0.0.0", port):
                return f"port {port} is taken by another program; stop it, or start the predictor on other ports"
        return None

    def start(self, timeout=300):
        """Start it in the background and wait until the model is ready; on failure stop it and raise
        RuntimeError with the log's tail."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as output:
            ports = ["--http_port", str(self.http_port), "--grpc_port", str(self.grpc_port)]
            process = subprocess.Popen(
                [sys.executable, "-m", "predictor", *ports, *self.options],
                cwd=REPOSITORY,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            if self.ready():
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"the KServe predictor did not become ready; end of {self.log}:\n{self.log_tail()}")

    def ready(self):
        try:
            return requests.get(f"{self.inference_url}/v2/models/{MODEL_NAME}/ready", timeout=5).ok
        except requests.RequestException:
            return False

    def log_tail(self, lines=40):
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""

    def stop(self, timeout=60):
        """Stop it (SIGTERM, then SIGKILL after `timeout` s); whether one was running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        try:
            psutil.Process(pid).wait(timeout)
        except psutil.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
        self.pid_file.unlink(missing_ok=True)
        return True
