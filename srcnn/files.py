"""Where the project's files are, reading its Java .properties files, and writing files so that a reader never
sees half of one."""

from pathlib import Path

# The repository's root: the checkout, or inside srcnn.mar the model's folder (the archive keeps srcnn/ and
# weights/ side by side there too). The one place that computes it.
REPOSITORY = Path(__file__).resolve().parent.parent


def write_atomically(path, content):
    """Write `content` to `path` through a hidden temporary file beside it (`.NAME.tmp`, which no folder listing of
    the project takes as an input), renamed over it at the end: a reader sees the old file or the new one, never
    part of one. `content` is str, bytes, or a function that writes the file whose path it is given (torch.save)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    if isinstance(content, bytes):
        temporary.write_bytes(content)
    elif isinstance(content, str):
        temporary.write_text(content)
    else:
        content(temporary)
    temporary.replace(path)


def read_properties(path):
    """key=value lines of a Java .properties file (no continuation lines), comments skipped."""
    properties = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")) and "=" in line:
            key, value = line.split("=", 1)
            properties[key.strip()] = value.strip()
    return properties
