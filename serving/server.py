"""TorchServe instances: the repository's own, private ones on free ports (tests, benchmarks) and one on
KServe's storage layout; starting them, waiting until the model is READY, and stopping them."""

import json
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

from serving import BIN, MODEL_CONFIG, MODEL_NAME
from serving.archive import build_archive
from serving.java import java_environment
from srcnn.files import REPOSITORY, read_properties


@dataclass
class Server:
    """One TorchServe instance: its config file, the folder it runs in (logs/ lands there), optionally a
    private temporary folder (TorchServe keeps its pid file there, so two instances need two), settings given as
    TS_* environment variables (they win over the config where it says enable_envvars_config=true), and the
    launcher's arguments besides --start and --ts-config."""

    config: Path = REPOSITORY / "config.properties"
    workdir: Path = REPOSITORY
    tmpdir: Path | None = None
    overrides: dict = field(default_factory=dict)
    arguments: tuple = ("--ncs",)

    @property
    def properties(self):
        written = read_properties(self.config) if Path(self.config).exists() else {}  # not yet built: overrides
        return written | self.overrides

    @property
    def inference_url(self):
        return self.properties.get("inference_address", "http://127.0.0.1:8080")

    @property
    def management_url(self):
        return self.properties.get("management_address", "http://127.0.0.1:8081")

    @property
    def log_dir(self):
        return Path(self.workdir) / "logs"

    def environment(self):
        environment = java_environment()
        environment.update(LOG_LOCATION=str(self.log_dir), METRICS_LOCATION=str(self.log_dir))
        environment.update({f"TS_{key.upper()}": value for key, value in self.overrides.items()})
        if self.tmpdir:
            Path(self.tmpdir).mkdir(parents=True, exist_ok=True)
            environment.update(TMPDIR=str(self.tmpdir), TEMP=str(self.tmpdir))
        return environment

    def start_problem(self):
        """One line saying why this server cannot start (a TorchServe already running, a port taken), or None."""
        pid = running_torchserve(self.tmpdir)
        if pid:
            return (
                f"TorchServe is already running (pid {pid}): stop it with `make stop` (or torchserve --stop), "
                f"then start again"
            )
        for key, default in (
            ("inference_address", "http://127.0.0.1:8080"),
            ("management_address", "http://127.0.0.1:8081"),
            ("metrics_address", "http://127.0.0.1:8082"),
            ("grpc_inference_port", "7070"),
            ("grpc_management_port", "7071"),
        ):
            value = self.properties.get(key, default)
            host, port = ("127.0.0.1", value) if value.isdigit() else value.rsplit("/", 1)[-1].rsplit(":", 1)
            if not port_is_free(host, int(port)):
                return (
                    f"port {port} ({key} in {self.config}) is taken by another program; stop it, or set "
                    f"another port there"
                )
        return None

    def torchserve(self, *arguments, output=subprocess.PIPE):
        return subprocess.run(
            [str(BIN / "torchserve"), *arguments],
            cwd=self.workdir,
            env=self.environment(),
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
        )

    def start(self, timeout=180):
        """Start TorchServe and wait until every worker of the model is READY; on failure stop it and raise
        RuntimeError with the log's tail."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        console = self.log_dir / "console.log"
        # The Java frontend keeps the launcher's stdout open for its whole life: give it a file, not a pipe.
        with console.open("a") as output:
            result = self.torchserve(
                "--start", *self.arguments, "--ts-config", str(Path(self.config).resolve()), output=output
            )
        if result.returncode != 0:
            raise RuntimeError(f"torchserve --start failed; end of the logs:\n{self.log_tail()}")
        try:
            self.wait_until_ready(timeout)
        except RuntimeError:
            self.stop()
            raise

    def token(self, api):
        """The bearer token of `api` ("management" or "inference") from the key_file.json TorchServe writes in
        its folder when token authorisation is on; None when it is off."""
        try:
            return json.loads((Path(self.workdir) / "key_file.json").read_text())[api]["key"]
        except (OSError, ValueError, LookupError):
            return None

    def headers(self, api):
        token = self.token(api)
        return {"Authorization": f"Bearer {token}"} if token else {}

    def workers(self):
        """The model's workers as the management API reports them; [] while it cannot say."""
        try:
            response = requests.get(
                f"{self.management_url}/models/{MODEL_NAME}", headers=self.headers("management"), timeout=5
            )
            return response.json()[0]["workers"] if response.ok else []
        except (requests.RequestException, ValueError, LookupError):
            return []

    def wait_until_ready(self, timeout):
        log = self.log_dir / "ts_log.log"
        seen = log.stat().st_size if log.exists() else 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            workers = self.workers()
            if workers and all(worker["status"] == "READY" for worker in workers):
                return workers
            if log.exists() and b"Load model failed" in log.read_bytes()[seen:]:
                break  # TorchServe would only retry the same failing load
            time.sleep(0.5)
        raise RuntimeError(f"model {MODEL_NAME} not READY after {timeout} s; end of the logs:\n{self.log_tail()}")

    def log_tail(self, lines=40):
        text = []
        for name in ("console.log", "ts_log.log", "model_log.log"):
            path = self.log_dir / name
            if path.exists():
                text.append(f"--- {path}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(text) or f"(no logs in {self.log_dir})"

    def stop(self):
        """Stop TorchServe and wait for it to exit (up to a minute)."""
        return self.torchserve("--stop", "--foreground")


def running_torchserve(tmpdir=None):
    """The pid of the TorchServe that the launcher's pid file names, if that process still runs (the launcher
    keeps the file in $TMPDIR, here `tmpdir` when given)."""
    pid_file = Path(tmpdir or tempfile.gettempdir()) / ".model_server.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
        return pid if "org.pytorch.serve.ModelServer" in psutil.Process(pid).cmdline() else None
    except (OSError, ValueError, IndexError, psutil.Error):
        return None


def port_is_free(host, port):
    """Whether a listener could bind `host:port` now (with SO_REUSEADDR, as Java's does)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_ports(count):
    """`count` loopback TCP ports free at the time of asking."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def private_server(workdir, drop=(), model_config=MODEL_CONFIG, **properties):
    """A TorchServe on the repository's config.properties and a fresh srcnn.mar (built with `model_config`),
    moved to free loopback ports, with a private model store, log folder and pid file under `workdir`;
    `properties` override config.properties entries and `drop` removes some. Not started. For the tests and
    the benchmark, which must not collide with a server already running."""
    workdir = Path(workdir)
    build_archive(workdir / "model_store", model_config=model_config)
    inference, management, metrics, grpc_inference, grpc_management = free_ports(5)
    settings = read_properties(REPOSITORY / "config.properties")
    settings.update(
        inference_address=f"http://127.0.0.1:{inference}",
        management_address=f"http://127.0.0.1:{management}",
        metrics_address=f"http://127.0.0.1:{metrics}",
        grpc_inference_port=str(grpc_inference),
        grpc_management_port=str(grpc_management),
        model_store=str(workdir / "model_store"),
        metrics_config=str(REPOSITORY / settings["metrics_config"]),
        **properties,
    )
    config = workdir / "config.properties"
    config.write_text("".join(f"{key}={value}\n" for key, value in settings.items() if key not in drop))
    return Server(config=config, workdir=workdir, tmpdir=workdir / "tmp")


def kserve_server(store, ports=(8085, 8081, 8082, 7070, 7071), tmpdir=None):
    """TorchServe on a kserve_store layout, started as KServe's runtime starts it (the layout's config, its model
    store, no service envelope: the InferenceServices here set no serviceEnvelope label) but bound to 127.0.0.1:
    the addresses and the /mnt/models paths are overridden by TS_* variables, which the config admits."""
    store = Path(store).resolve()
    inference, management, metrics, grpc_inference, grpc_management = ports
    overrides = {
        "inference_address": f"http://127.0.0.1:{inference}",
        "management_address": f"http://127.0.0.1:{management}",
        "metrics_address": f"http://127.0.0.1:{metrics}",
        "grpc_inference_address": "127.0.0.1",
        "grpc_inference_port": str(grpc_inference),
        "grpc_management_port": str(grpc_management),
        "metrics_config": str(store / "config" / "metrics.yaml"),
        "service_envelope": "",
    }
    return Server(
        config=store / "config" / "config.properties",
        workdir=store,
        tmpdir=tmpdir,
        overrides=overrides,
        arguments=(f"--model-store={store / 'model-store'}",),
    )
