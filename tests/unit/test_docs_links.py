"""Every relative link in README.md and docs/*.md leads somewhere: the file exists and,
when the link names a heading (``#anchor``), that page has the heading. Likewise every
pointer from the code to a section of docs/facts.md (``docs/facts.md, "Section"``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from docs_text import ROOT, documents

# [text](target) outside code spans; images and plain URLs are handled alike.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} (.+?)\s*$", flags=re.M)


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {anchor(h) for h in HEADING.findall(text)}


def relative_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def all_links() -> list[tuple[Path, str]]:
    return [(page, target) for page in documents() for target in relative_links(page)]


def test_the_docs_link_to_each_other():
    assert len(all_links()) >= 20  # the parser still finds links


@pytest.mark.parametrize(
    ("page", "target"), all_links(), ids=lambda v: v.name if isinstance(v, Path) else v
)
def test_a_relative_link_resolves(page: Path, target: str):
    path, _, fragment = target.partition("#")
    destination = (page.parent / path).resolve() if path else page
    assert destination.exists(), f"{page.relative_to(ROOT)}: {target} does not exist"
    assert ROOT in destination.parents or destination == ROOT, f"{target} leaves the repository"
    if fragment:
        assert destination.suffix == ".md", f"{page.relative_to(ROOT)}: {target}: anchor on a non-page"
        assert fragment in anchors(destination), (
            f"{page.relative_to(ROOT)}: {target}: no heading with that anchor in {destination.name}"
        )


# docs/facts.md, "Section" (or without the comma) in a comment, docstring or help text;
# the quoted name may run over a line break and a comment marker.
FACTS_POINTER = re.compile(r'docs/facts\.md,?\s+"([^"]+)"')


def facts_pointers() -> list[tuple[str, str]]:
    files = [ROOT / "pyproject.toml"] + [
        path
        for folder in ("executor", "runtime_image", "benchmarks", "tests")
        for pattern in ("*.py", "*.sh")
        for path in sorted((ROOT / folder).rglob(pattern))
        if path != Path(__file__) and not any(part.startswith(".venv") for part in path.parts)
    ]
    found = []
    for path in files:
        text = re.sub(r"\n\s*#?\s*", " ", path.read_text())  # join wrapped lines
        found += [(path.relative_to(ROOT).as_posix(), m) for m in FACTS_POINTER.findall(text)]
    return found


def test_the_code_points_at_facts():
    assert len(facts_pointers()) >= 10  # the parser still finds them


@pytest.mark.parametrize(("where", "title"), facts_pointers(), ids=lambda v: v)
def test_a_pointer_to_facts_names_one_of_its_sections(where: str, title: str):
    headings = HEADING.findall((ROOT / "docs" / "facts.md").read_text())
    assert title in headings, f"{where} points at docs/facts.md {title!r}; its sections: {headings}"
