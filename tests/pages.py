"""The README's and docs/' command blocks: each ```sh block carries, on the line above it, either
`<!-- block: NAME -->` (a test runs it, fetching it with `command_block(page, NAME)`) or
`<!-- not run by tests: WHY -->`; tests/test_readme.py holds both sides to that."""

import re

from srcnn.files import REPOSITORY

PAGES = ["README.md", *sorted(str(path.relative_to(REPOSITORY)) for path in (REPOSITORY / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?:<!-- (block: [\w-]+|not run by tests: [^\n]+?) -->\n)?```(\w*)\n(.*?)^```$", re.S | re.M)


def blocks(page):
    """[(marker or None, language, text)] of every fenced block of `page`, in order."""
    return [match.groups() for match in FENCE.finditer((REPOSITORY / page).read_text())]


def command_block(page, name):
    """The text of the ```sh block of `page` marked `<!-- block: name -->`."""
    found = [text for marker, language, text in blocks(page) if marker == f"block: {name}" and language == "sh"]
    assert len(found) == 1, f"{page} has {len(found)} sh blocks marked {name!r}"
    return found[0]


def table_after(page, name):
    """The first Markdown table after the block `name` of `page`, as its lines."""
    text = (REPOSITORY / page).read_text()
    rest = text[text.index(f"<!-- block: {name} -->") :]
    return re.search(r"^(\|.*\|\n)+", rest, re.M).group(0).splitlines()
