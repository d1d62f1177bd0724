"""The README and docs/ as a newcomer meets them: a README short enough to read, linking every page; links that
resolve; and every command block either run by a test (tests/test_readme.py and others) or saying why not."""

import re
import subprocess

import pytest

from pages import PAGES, blocks
from srcnn.files import REPOSITORY

TESTS = "\n".join(path.read_text() for path in sorted((REPOSITORY / "tests").glob("*.py")))
RUN = set(re.findall(r'command_block\(\s*"([^"]+)",\s*"([^"]+)"\)', TESTS))  # (page, name) the tests fetch


def test_the_readme_is_short_and_links_every_page():
    readme = (REPOSITORY / "README.md").read_text()
    assert len(readme.encode()) <= 16_000
    for page in PAGES[1:]:
        assert f"]({page})" in readme, f"README.md does not link {page}"


def anchors(path):
    """The anchors GitHub gives a Markdown file's headings."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"^```.*?^```$", "", path.read_text(), flags=re.S | re.M), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", PAGES)
def test_every_relative_link_and_anchor_resolves(page):
    path = REPOSITORY / page
    for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", path.read_text()):
        if re.match(r"\w+://", target):
            continue
        linked = (path.parent / target) if target else path
        assert linked.exists(), f"{page} links {target}, which does not exist"
        if anchor:
            assert anchor in anchors(linked), f"{page} links {target}#{anchor}, which has no such heading"


@pytest.mark.parametrize("page", PAGES)
def test_every_command_block_is_run_by_a_test_or_says_why_not(page):
    for marker, language, text in blocks(page):
        assert language in ("sh", "text"), f"{page}: a block without sh or text: {text[:60]!r}"
        if language == "text":
            continue
        assert marker, f"{page}: an sh block with no marker: {text[:60]!r}"
        if marker.startswith("block: "):
            assert (page, marker.removeprefix("block: ")) in RUN, f"{page}: no test runs {marker}"


def test_every_block_a_test_fetches_exists():
    marked = {
        (page, marker.removeprefix("block: "))
        for page in PAGES
        for marker, _, _ in blocks(page)
        if marker and marker.startswith("block: ")
    }
    assert RUN <= marked
    assert len(marked) >= 12


def make_lines():
    """Each `make` command of the blocks no test runs, with the page it is on."""
    lines = []
    for page in PAGES:
        for marker, language, text in blocks(page):
            if language == "sh" and marker.startswith("not run by tests"):
                joined = re.sub(r"\\\n\s*", "", text)
                lines += [
                    (page, line.split("#")[0].strip()) for line in joined.splitlines() if line.startswith("make ")
                ]
    return lines


@pytest.mark.parametrize("page, line", make_lines(), ids=lambda value: value if " " in value else None)
def test_every_make_line_no_test_runs_names_a_target_that_plans(page, line):
    result = subprocess.run(
        ["bash", "-c", line.replace("make ", "make -n ", 1)], cwd=REPOSITORY, text=True, capture_output=True, timeout=60
    )
    assert result.returncode == 0, f"{page}: {line}: {result.stderr}"


PACKAGES = ("srcnn", "handler", "predictor", "serving")


@pytest.mark.parametrize("package", PACKAGES)
def test_the_architecture_page_names_every_module(package):
    text = (REPOSITORY / "docs" / "architecture.md").read_text()
    section = text.split(f"\n`{package}/`\n", 1)[1].split("\n\n`", 1)[0].split("\n## ", 1)[0]
    named = set(re.findall(r"^- `(\w+\.py)`:", section, re.M))
    assert named == {path.name for path in (REPOSITORY / package).glob("*.py")}


def test_the_product_names_no_issue_and_no_session():
    found = subprocess.run(
        ["git", "grep", "-nE", r"issue [0-9]+|the issue's|this session", "--", ".", ":!tests/test_pages.py"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
    )
    assert found.stdout == "", found.stdout
