"""How ``covalent-ecs doctor`` shows its results: ✓ / ✗ / – lines with fixes and a summary,
or one JSON document (``--json``). The one place doctor's output is formatted."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .doctor import Check, run_checks

_MARKS = {
    "ok": "[green]✓[/]",
    "fail": "[bold red]✗[/]",
    "skip": "[dim]–[/]",
    "warn": "[yellow]![/]",
}
_INDENT = "    "


def main(conf_path: str | None, overrides: Mapping[str, Any], *, as_json: bool) -> int:
    """Run every check, print the report; the exit code (1 when any check failed; a
    warning, something doctor could not verify, does not fail it)."""
    from .conffile import default_conf_path

    checks = run_checks(conf_path or default_conf_path(), overrides)
    if as_json:
        print(json.dumps(summary(checks), indent=2))
    else:
        from rich.console import Console

        console = Console(highlight=False, soft_wrap=True)
        for line in lines(checks):
            console.print(line)
    return 0 if summary(checks)["ok"] else 1


def summary(checks: list[Check]) -> dict[str, Any]:
    """The JSON document ``doctor --json`` prints."""
    return {
        "ok": not any(check.status == "fail" for check in checks),
        "checks": [check.as_dict() for check in checks],
        "summary": summary_line(checks),
    }


def lines(checks: list[Check]) -> list[str]:
    """Rich markup: a line per check (detail lines indented), its fix, then the summary."""
    from rich.markup import escape

    out = []
    for check in checks:
        detail = escape(check.detail).replace("\n", "\n" + _INDENT)
        out.append(f"{_MARKS[check.status]} [bold]{escape(check.name)}[/]: {detail}")
        if check.fix:
            label = "hint" if check.status == "warn" else "fix"
            out.append(f"{_INDENT}[yellow]{label}:[/] {escape(check.fix)}")
    return [*out, "", summary_line(checks)]


def summary_line(checks: list[Check]) -> str:
    """``13 checks: all passed``, or how many passed, failed, warned and were not checked."""
    counts = {status: sum(c.status == status for c in checks) for status in _MARKS}
    total = plural(len(checks), "check")
    if counts["ok"] == len(checks):
        return f"{total}: all passed"
    parts = [
        f"{counts['ok']} passed" if counts["ok"] else "",
        f"{counts['fail']} failed" if counts["fail"] else "",
        plural(counts["warn"], "warning") if counts["warn"] else "",
        f"{counts['skip']} not checked" if counts["skip"] else "",
    ]
    parts = [part for part in parts if part]
    return f"{total}: {', '.join(parts)}"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
