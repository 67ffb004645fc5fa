"""``covalent-ecs``: argument parsing only; each command calls into its own module.

Commands are registered on ``app``; add a new one as a function decorated with
``@app.command()`` that imports its module lazily (so ``covalent-ecs --help`` stays
fast and a command's dependencies load only when it runs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="covalent-ecs",
    help="Tools for the Covalent ECS Fargate executor.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def sandbox(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1; 0 picks a free one.")] = 0,
    write_conf: Annotated[
        Path | None,
        typer.Option(
            help="Write the executors.ecs section into this covalent.conf (other sections are kept).",
            dir_okay=False,
        ),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Keep the sandbox's files here (default: a temporary directory)."),
    ] = None,
    provision_delay: Annotated[
        float, typer.Option(help="Seconds a task spends PROVISIONING + PENDING.", min=0)
    ] = 0.2,
    deprovision_delay: Annotated[
        float,
        typer.Option(help="Seconds from a container's exit to its task being STOPPED.", min=0),
    ] = 0.3,
) -> None:
    """Run a local AWS API and Fargate agent (no AWS account needed) until Ctrl-C."""
    try:
        from .sandbox.foreground import serve
    except ModuleNotFoundError as exc:  # moto is an optional dependency
        typer.echo(
            f"the sandbox needs {exc.name!r}: pip install 'covalent-ecs-executor[sandbox]'",
            err=True,
        )
        raise typer.Exit(1) from exc

    raise typer.Exit(
        serve(
            port=port,
            state_dir=str(state_dir) if state_dir else None,
            write_conf=str(write_conf) if write_conf else None,
            provision_delay_s=provision_delay,
            deprovision_delay_s=deprovision_delay,
        )
    )


@app.command("publish-image")
def publish_image(
    registry: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Push to this registry (https://host[:port], or http:// for 127.0.0.1) "
            "instead of ECR. Credentials: COVALENT_ECS_REGISTRY_USERNAME/PASSWORD or "
            "~/.docker/config.json.",
        ),
    ] = None,
    repository: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="Repository name (default: ecr_repo_name of covalent.conf's executors.ecs).",
        ),
    ] = None,
    tag: Annotated[
        str | None,
        typer.Option(
            metavar="TAG",
            help="Tag (default: this version's runner tag, the one the executor uses); "
            "<tag>-<digest prefix> is pushed too.",
        ),
    ] = None,
    base_image: Annotated[
        str | None,
        typer.Option(
            metavar="REF",
            help="Base image with the client's Python minor "
            "(default: public.ecr.aws/docker/library/python:3.X-slim).",
        ),
    ] = None,
    platform: Annotated[
        list[str] | None,
        typer.Option(
            metavar="PLATFORM",
            help="linux/amd64, linux/arm64 (repeat or comma-separate; default: both).",
        ),
    ] = None,
) -> None:
    """Build the runner image without Docker and push it; prints the pushed reference last."""
    from . import publish
    from .errors import ECSExecutorError

    def report(line: str) -> None:
        typer.echo(line, err=True)

    try:
        platforms = publish.parse_platforms(platform or [])
        config = publish.configured_executor()
        repo = repository or config.ecr_repo_name
        if registry:
            target = publish.registry_target(registry, repo)
        else:
            from . import aws

            target = publish.ecr_target(aws.clients_for(config), repo, report)
        try:
            result = publish.publish(
                target, tag=tag, base_image=base_image, platforms=platforms, report=report
            )
        finally:
            target.client.close()
    except ECSExecutorError as err:
        typer.echo(f"error: [{type(err).__name__}] {err}", err=True)
        raise typer.Exit(1) from err
    typer.echo(result.reference)


@app.callback()
def _root() -> None:
    """Tools for the Covalent ECS Fargate executor."""


def main() -> None:
    app()
