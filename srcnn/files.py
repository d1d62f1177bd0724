"""Writing files so that a reader never sees half of one."""

from pathlib import Path


def write_atomically(path, content):
    """Write `content` (str or bytes) to `path` through a temporary file beside it, renamed over it at the end."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    if isinstance(content, bytes):
        temporary.write_bytes(content)
    else:
        temporary.write_text(content)
    temporary.replace(path)
