"""The project's documentation as tests read it (README.md and docs/*.md), and what
it must name."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def documents() -> list[Path]:
    """README.md first, then every page under docs/."""
    return [README, *sorted(DOCS.glob("*.md"))]


def section(path: Path, title: str) -> str:
    """The text under the ``## title`` heading of ``path``, up to the next ``## ``."""
    text = path.read_text()
    heading = f"\n## {title}\n"
    assert heading in text, f"{path.name} has no section {title!r}"
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def user_facing_errors() -> set[str]:
    """The error classes a user can see (every ECSExecutorError but the base)."""
    from covalent_ecs_executor import errors

    return {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.ECSExecutorError)
        and value is not errors.ECSExecutorError
    }
