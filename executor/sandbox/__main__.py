"""``python -m covalent_ecs_executor.sandbox``: ``covalent-ecs sandbox`` by another name.

The same command (cli.py), so both take the same options; ``SandboxProcess`` starts
the sandbox this way (``--ready-file``).
"""

from __future__ import annotations

from ..cli import sandbox_app


def main(argv: list[str] | None = None) -> None:
    sandbox_app(args=argv, prog_name="python -m covalent_ecs_executor.sandbox")


if __name__ == "__main__":
    main()
