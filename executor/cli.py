"""``covalent-ecs``: argument parsing only; each command calls into its own module.

Commands are registered on ``app``; add a new one as a function decorated with
``@app.command()`` that imports its module lazily (so ``covalent-ecs --help`` stays
fast and a command's dependencies load only when it runs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand

if TYPE_CHECKING:
    from .aws import Clients

app = typer.Typer(
    name="covalent-ecs",
    help="Tools for the Covalent ECS Fargate executor.",
    no_args_is_help=True,
    add_completion=False,
)


class _Command(TyperCommand):
    """Typer's help shows a type column for flags too (``--aws-limits <bool>``); a flag
    takes no value, so show none."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params


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
        typer.Option(
            help="Keep the sandbox's files here (default: a temporary directory, removed on exit)."
        ),
    ] = None,
    provision_delay: Annotated[
        float, typer.Option(help="Seconds a task spends PROVISIONING + PENDING.", min=0)
    ] = 0.2,
    deprovision_delay: Annotated[
        float,
        typer.Option(help="Seconds from a container's exit to its task being STOPPED.", min=0),
    ] = 0.3,
    aws_limits: Annotated[
        bool,
        typer.Option(
            "--aws-limits",
            help="Throttle ECS calls like AWS (per-account token buckets, e.g. RunTask 100 burst, 40/s).",
        ),
    ] = False,
    ready_file: Annotated[
        Path | None,
        typer.Option(help="Write JSON (endpoint_url, executor_config, pid) here once ready.", dir_okay=False),
    ] = None,
    starter: Annotated[
        list[str] | None,
        typer.Option(
            metavar="MODULE:ATTR",
            help="A process starter for chosen tasks (its class or factory, importable here);"
            " repeatable, asked in order before the default.",
        ),
    ] = None,
) -> None:
    """Run a local AWS API and Fargate agent (no AWS account needed) until Ctrl-C."""
    try:
        from .sandbox.foreground import serve
        from .sandbox.starters import load_starter
    except ModuleNotFoundError as exc:  # moto is an optional dependency
        typer.echo(
            f"the sandbox needs {exc.name!r}: pip install 'covalent-ecs-executor[sandbox]'",
            err=True,
        )
        raise typer.Exit(1) from exc
    try:
        starters = [load_starter(path) for path in starter or []]
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--starter") from err
    raise typer.Exit(
        serve(
            port=port,
            state_dir=str(state_dir) if state_dir else None,
            ready_file=str(ready_file) if ready_file else None,
            write_conf=str(write_conf) if write_conf else None,
            provision_delay_s=provision_delay,
            deprovision_delay_s=deprovision_delay,
            aws_limits=aws_limits,
            starters=starters,
        )
    )


app.command(cls=_Command)(sandbox)
# ``python -m covalent_ecs_executor.sandbox``: the same command, alone.
sandbox_app = typer.Typer(add_completion=False)
sandbox_app.command(cls=_Command)(sandbox)


# ------------------------------------------------------------------ infra and doctor
infra_app = typer.Typer(
    name="infra",
    help="The CloudFormation stack with everything the executor needs in one account/region.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(infra_app)

_Region = Annotated[str, typer.Option(help="AWS region; default: boto3's (AWS_DEFAULT_REGION, profile).")]
_Profile = Annotated[str, typer.Option(help="Profile in the AWS credentials/config files.")]
_Credentials = Annotated[
    str | None,
    typer.Option(help="AWS shared-credentials file; '' for boto3's default chain."),
]
_EndpointUrl = Annotated[
    str, typer.Option(help="AWS endpoint override, e.g. the sandbox's http://127.0.0.1:PORT.")
]
_PollInterval = Annotated[float, typer.Option(help="Seconds between progress checks.", min=0.1)]
_Timeout = Annotated[float, typer.Option(help="Give up waiting after this many seconds.", min=1)]
_StackName = Annotated[
    str, typer.Option(help="CloudFormation stack name; it also names the ECS cluster.")
]


def _fail(message: str) -> typer.Exit:
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(1)


def _progress() -> Callable[[str], None]:
    """Print progress lines, coloured by the stack status they contain (on a terminal)."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False, soft_wrap=True)

    def echo(line: str) -> None:
        style = "red" if "_FAILED" in line or "ROLLBACK" in line else "green" if "_COMPLETE" in line else ""
        console.print(f"[{style}]{escape(line)}[/]" if style else escape(line))

    return echo


def _connection(region: str, profile: str, credentials: str | None, endpoint_url: str) -> Clients:
    """AWS clients for the connection options (validated before any AWS call)."""
    from . import aws
    from .config import build_config

    given: dict[str, object] = {"region": region, "profile": profile, "endpoint_url": endpoint_url}
    if credentials is not None:
        given["credentials"] = credentials
    return aws.clients_for(build_config(given, {}))


@infra_app.command("template")
def infra_template(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write it to this file instead of stdout.", dir_okay=False)
    ] = None,
) -> None:
    """Print the CloudFormation template (for the console, the AWS CLI, or review)."""
    from .setup.infra import template_body

    if output is None:
        typer.echo(template_body(), nl=False)
    else:
        output.write_text(template_body())
        typer.echo(f"wrote {output}")


@infra_app.command("deploy")
def infra_deploy(
    stack_name: _StackName = "covalent-ecs",
    parameter: Annotated[
        list[str] | None,
        typer.Option(
            "--parameter",
            "-p",
            help="Template parameter Name=Value (repeatable), e.g. -p LogRetentionDays=30; "
            "see `covalent-ecs infra template`.",
        ),
    ] = None,
    write_conf: Annotated[
        Path | None,
        typer.Option(
            help="Write the executors.ecs keys into this covalent.conf (other sections and "
            "keys are kept).",
            dir_okay=False,
        ),
    ] = None,
    region: _Region = "",
    profile: _Profile = "",
    credentials: _Credentials = None,
    endpoint_url: _EndpointUrl = "",
    poll_interval: _PollInterval = 5.0,
    timeout: _Timeout = 1800,
) -> None:
    """Create (or update) the stack, with a line per stack event; print the config block."""
    from .errors import ECSExecutorError
    from .setup.conffile import toml_block, write_covalent_conf
    from .setup.infra import check_stack_name, deploy, parse_parameters

    try:
        check_stack_name(stack_name)
        parameters = parse_parameters(parameter or [])
        clients = _connection(region, profile, credentials, endpoint_url)
        values = deploy(
            clients,
            stack_name,
            parameters,
            echo=_progress(),
            poll_interval_s=poll_interval,
            timeout_s=timeout,
        )
    except ECSExecutorError as err:
        raise _fail(str(err)) from None
    settings = clients.settings
    block = {
        "credentials": settings.credentials,
        "profile": settings.profile,
        "endpoint_url": settings.endpoint_url,
        **values,
    }
    typer.echo("")
    typer.echo("[executors.ecs] for covalent.conf:")
    typer.echo("")
    typer.echo(toml_block(block))
    if write_conf:
        write_covalent_conf(str(write_conf), block, keep_other_keys=True)
        typer.echo(f"\nwrote [executors.ecs] into {write_conf}")
    typer.echo(
        "\nNext: `covalent-ecs publish-image` (the runner image), then `covalent-ecs doctor`."
    )


@infra_app.command("destroy")
def infra_destroy(
    stack_name: _StackName = "covalent-ecs",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    region: _Region = "",
    profile: _Profile = "",
    credentials: _Credentials = None,
    endpoint_url: _EndpointUrl = "",
    poll_interval: _PollInterval = 5.0,
    timeout: _Timeout = 1800,
) -> None:
    """Delete the stack and everything in it (staged objects, runner images, task logs)."""
    from .errors import ECSExecutorError
    from .setup.infra import check_stack_name, destroy

    try:
        check_stack_name(stack_name)
        clients = _connection(region, profile, credentials, endpoint_url)
        if not yes:
            typer.confirm(
                f"Delete stack {stack_name}, its bucket's objects, runner images and logs?",
                abort=True,
            )
        destroy(
            clients,
            stack_name,
            echo=_progress(),
            poll_interval_s=poll_interval,
            timeout_s=timeout,
        )
    except ECSExecutorError as err:
        raise _fail(str(err)) from None


@app.command()
def doctor(
    conf: Annotated[
        Path | None,
        typer.Option(
            help="covalent.conf to read the executors.ecs section from (default: Covalent's, "
            "$COVALENT_CONFIG_DIR/covalent.conf or ~/.config/covalent/covalent.conf).",
            dir_okay=False,
        ),
    ] = None,
    region: Annotated[str | None, typer.Option(help="Override region.")] = None,
    profile: Annotated[str | None, typer.Option(help="Override profile.")] = None,
    credentials: Annotated[str | None, typer.Option(help="Override credentials.")] = None,
    endpoint_url: Annotated[str | None, typer.Option(help="Override endpoint_url.")] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON document instead of lines.")
    ] = False,
) -> None:
    """Check the configuration against the AWS account; exit 1 if anything is wrong."""
    import json
    import os

    from rich.console import Console
    from rich.markup import escape

    from .setup.conffile import default_conf_path, read_executor_section
    from .setup.doctor import fail, run_checks, summary

    path = str(conf) if conf else default_conf_path()
    overrides = {
        key: value
        for key, value in (
            ("region", region),
            ("profile", profile),
            ("credentials", credentials),
            ("endpoint_url", endpoint_url),
        )
        if value is not None
    }
    if conf is None and not os.path.exists(path):
        section: dict[str, object] = {}
        checks = run_checks(overrides, section, source=f"{path} not found: defaults")
    else:
        try:
            section = read_executor_section(path)
        except (OSError, ValueError) as err:
            checks = [fail("config", f"cannot read {path}: {err}", "give --conf an existing covalent.conf")]
        else:
            checks = run_checks(overrides, section, source=path)
    report = summary(checks)
    if json_output:
        typer.echo(json.dumps(report, indent=2))
    else:
        console = Console(highlight=False, soft_wrap=True)
        marks = {"ok": "[green]✓[/]", "fail": "[bold red]✗[/]", "skip": "[dim]–[/]"}
        for check in checks:
            console.print(f"{marks[check.status]} [bold]{escape(check.name)}[/]: {escape(check.detail)}")
            if check.fix:
                console.print(f"    [yellow]fix:[/] {escape(check.fix)}")
        failed = sum(check.status == "fail" for check in checks)
        console.print(
            f"\n{len(checks)} checks: {failed} failed"
            if failed
            else f"\n{len(checks)} checks: all passed"
        )
    raise typer.Exit(0 if report["ok"] else 1)
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
    from .errors import ECSExecutorError
    from .image import publish

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
