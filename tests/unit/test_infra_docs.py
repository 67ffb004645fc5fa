"""The set-up documentation matches the code: template parameters and doctor's checks
(docs/aws-setup.md), the troubleshooting keys (error class names, docs/troubleshooting.md)
and every `covalent-ecs` command shown in the README or docs/."""

from __future__ import annotations

import re
import shlex

import pytest
import typer
from docs_text import DOCS, documents, section, user_facing_errors

from covalent_ecs_executor.cli import app
from covalent_ecs_executor.setup import infra
from covalent_ecs_executor.setup.doctor import CHECKS

AWS_SETUP = DOCS / "aws-setup.md"
STACK = "The stack: `covalent-ecs infra deploy`"
DOCTOR = "Checking the set-up: `covalent-ecs doctor`"


def first_cells(text: str) -> list[str]:
    return [row.split("|")[1].strip() for row in text.splitlines() if row.strip().startswith("| ")]


def test_every_template_parameter_is_documented_with_its_default():
    cells = first_cells(section(AWS_SETUP, STACK))
    documented = {name.strip("` ") for cell in cells for name in cell.split(",")}
    assert set(infra.template()["Parameters"]) <= documented
    for name, spec in infra.template()["Parameters"].items():
        default = str(spec.get("Default", ""))
        if default:
            row = next(
                r for r in section(AWS_SETUP, STACK).splitlines()
                if r.strip().startswith("| ") and f"`{name}`" in r.split("|")[1]
            )
            assert f"`{default}`" in row, (name, row)


def test_the_doctor_table_lists_every_check():
    documented = set(first_cells(section(AWS_SETUP, DOCTOR).split("It checks:", 1)[1]))
    names = {row.name for row in CHECKS}
    documented = {n for cell in documented for n in cell.split(", ")}
    assert {"subnet", "security group"} <= documented
    assert names == documented - {"check"}


def test_troubleshooting_is_keyed_by_every_error_a_user_sees():
    by_class = section(DOCS / "troubleshooting.md", "By error class")
    keys = set(re.findall(r"^\| `\[(\w+)\]", by_class, flags=re.M))
    assert keys == user_facing_errors()


def shown_commands() -> list[list[str]]:
    text = "\n".join(path.read_text() for path in documents())
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    text = "\n".join(blocks).replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip().rstrip("&").strip()
        if line.startswith("covalent-ecs "):
            commands.append(shlex.split(line)[1:])
    return commands


@pytest.mark.parametrize("argv", shown_commands(), ids=lambda argv: " ".join(argv)[:60])
def test_every_command_in_the_readme_parses(argv):
    command = typer.main.get_command(app)
    args = list(argv)
    names = []
    while hasattr(command, "commands") and args and not args[0].startswith("-"):
        command = command.commands[args.pop(0)]
        names.append(command.name)
    assert names, argv
    command.make_context(" ".join(names), args)  # raises on an unknown option or bad value
