"""srcnn.mar, built from the repository: it holds handler/ exactly, the srcnn package and the shipped weights;
nothing in handler/ runs host-side tools; and the build's failures are typed errors the command line words."""

import ast
import hashlib
import zipfile

import pytest

from serving import MODEL_CONFIG, ServingError
from serving.__main__ import main
from serving.archive import build_archive
from srcnn.files import REPOSITORY
from srcnn.weights import SCALES, sidecar_path, weight_file


def digest(data):
    return hashlib.sha256(data).hexdigest()


def tracked(folder):
    """{path relative to the repository: sha256} of the files under `folder`, caches left out."""
    return {
        str(path.relative_to(REPOSITORY)): digest(path.read_bytes())
        for path in sorted((REPOSITORY / folder).rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    path = build_archive(tmp_path_factory.mktemp("store"))
    with zipfile.ZipFile(path) as mar:
        return {name: digest(mar.read(name)) for name in mar.namelist() if not name.endswith("/")}


def test_the_archive_holds_handler_exactly(archive):
    folder = tracked("handler")
    config = str(MODEL_CONFIG.relative_to(REPOSITORY))
    assert archive["model-config.yaml"] == folder.pop(config)  # the archiver's --config-file place
    assert archive["srcnn_handler.py"] == folder["handler/srcnn_handler.py"]  # and --handler's
    assert {name: value for name, value in archive.items() if name.startswith("handler/")} == folder
    assert any(name.endswith(".py") for name in folder)


def test_the_archive_holds_the_srcnn_package_and_every_shipped_weight_file(archive):
    package = {name: value for name, value in tracked("srcnn").items() if name.endswith(".py")}
    assert {name: value for name, value in archive.items() if name.startswith("srcnn/")} == package
    for scale in SCALES:
        weights = weight_file(REPOSITORY / "weights", scale)
        for path in (weights, sidecar_path(weights)):
            assert archive[f"weights/{path.name}"] == digest(path.read_bytes())
    assert set(archive) - {"MAR-INF/MANIFEST.json"} <= {
        name
        for name in archive
        if name.split("/")[0] in ("handler", "srcnn", "weights") or name in ("model-config.yaml", "srcnn_handler.py")
    }


def imported_modules(path):
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module.split(".")[0])
    return modules


@pytest.mark.parametrize("path", sorted((REPOSITORY / "handler").glob("*.py")), ids=lambda path: path.name)
def test_worker_code_starts_no_processes_and_needs_no_host_tools(path):
    assert not imported_modules(path) & {"subprocess", "serving", "training", "bench", "tools"}


def test_an_archive_without_weights_is_a_typed_error_and_the_command_says_what_to_do(tmp_path, capsys):
    with pytest.raises(ServingError, match="train them first"):
        build_archive(tmp_path / "store", weights_dir=tmp_path)
    assert main(["archive", "--weights", str(tmp_path), "--model-store", str(tmp_path / "store")]) == 1
    assert capsys.readouterr().err.startswith(f"serving: no srcnn_x2/3/4.pth in {tmp_path}")
