"""Where the project's files are, and writing files so that a reader never sees half of one."""

from pathlib import Path

# The repository's root: the checkout, or inside srcnn.mar the model's folder (the archive keeps srcnn/ and
# weights/ side by side there too). The one place that computes it.
REPOSITORY = Path(__file__).resolve().parent.parent


def write_atomically(path, content):
    """Write `content` (str or bytes) to `path` through a temporary file beside it, renamed over it at the end."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    if isinstance(content, bytes):
        temporary.write_bytes(content)
    else:
        temporary.write_text(content)
    temporary.replace(path)
