"""``covalent-ecs``: argument parsing only; each command calls into its own module.

Commands are registered on ``app``; add a new one as a function decorated with
``@app.command()`` that imports its module lazily (so ``covalent-ecs --help`` stays
fast and a command's dependencies load only when it runs).
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:
    from .aws import Clients
    from .config import ExecutorConfig


class _Commands(TyperGroup):
    """The CLI's one error boundary: an error a user can act on (bad input, a path that
    cannot be read or written, AWS saying no) is one line on stderr and exit code 1,
    never a traceback. Anything else is a bug and keeps its traceback. It also keeps
    help from showing a value type (``<bool>``) on flags, which take no value."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # The reader went away (`covalent-ecs ps | head -1`): end quietly as Unix tools
            # do, with stdout pointed at /dev/null so the interpreter's final flush cannot
            # fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(128 + signal.SIGPIPE) from None
        except Exception as err:  # typer's own Exit/Abort/usage errors are not ours: re-raised
            message = _user_error(err)
            if message is None:
                raise
            raise _fail(message) from None

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _hide_flag_types([*command.params, command.get_help_option(ctx)])
        return command

    def get_params(self, ctx: Any) -> Any:
        params = super().get_params(ctx)
        _hide_flag_types(params)
        return params


def _hide_flag_types(params: list[Any]) -> None:
    # typer shows every option's type in help; an empty metavar shows none.
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""


def _user_error(err: Exception) -> str | None:
    """The one-line message for an error the user can act on; None for a bug."""
    from .errors import ECSExecutorError

    if isinstance(err, ECSExecutorError):
        return str(err)
    if isinstance(err, OSError):
        return _describe_os_error(err)
    from . import aws

    if aws.is_boto_error(err):  # a call that did not go through aws.call
        return str(aws.translate(err, "complete the command"))
    return None


def _describe_os_error(err: OSError) -> str:
    """``<path>: <reason>``, saying which folder is missing when that is the reason."""
    reason = err.strerror or str(err)
    paths = [str(path) for path in (err.filename, err.filename2) if path is not None]
    if not paths:
        return reason
    folder = os.path.dirname(os.path.abspath(paths[-1]))
    if err.errno == errno.ENOENT and not os.path.isdir(folder):
        reason += f" (there is no folder {folder})"
    return f"{' -> '.join(paths)}: {reason}"


def _version(show: bool) -> None:
    if show:
        from importlib.metadata import version

        typer.echo(f"covalent-ecs {version('covalent-ecs-executor')}")
        raise typer.Exit()


app = typer.Typer(
    name="covalent-ecs",
    help="Tools for the Covalent ECS Fargate executor.",
    no_args_is_help=True,
    add_completion=False,
    cls=_Commands,
)


class _Command(TyperCommand):
    """A command run on its own (``python -m covalent_ecs_executor.sandbox``): no
    ``<bool>`` on flags there either (in the group, ``_Commands`` sees to it)."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        _hide_flag_types(params)
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
    pull_bandwidth: Annotated[
        float | None,
        typer.Option(
            metavar="MB_PER_S",
            min=0.001,
            help="Emulate image pulls: a task stays PENDING for its image's size over this "
            "bandwidth (off by default).",
        ),
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
            pull_bandwidth_mb_s=pull_bandwidth,
        )
    )


app.command()(sandbox)
# ``python -m covalent_ecs_executor.sandbox``: the same command, alone.
sandbox_app = typer.Typer(add_completion=False)
sandbox_app.command(cls=_Command)(sandbox)


# ------------------------------------------------------------------ infra and doctor
infra_app = typer.Typer(
    name="infra",
    help="The CloudFormation stack with everything the executor needs in one account/region.",
    no_args_is_help=True,
    add_completion=False,
    cls=_Commands,
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
    from rich.markup import escape

    # escape: messages quote things like [executors.ecs], which Rich reads as markup.
    # soft_wrap: no line breaks added, so a message stays one line however long.
    console = Console(stderr=True, soft_wrap=True, highlight=False)
    console.print(f"[bold red]error:[/] {escape(message)}")
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
    """AWS clients for the connection options (validated before any AWS call); an
    unreachable endpoint fails within seconds (aws.interactive_clients)."""
    from . import aws
    from .config import build_config

    given: dict[str, object] = {"region": region, "profile": profile, "endpoint_url": endpoint_url}
    if credentials is not None:
        given["credentials"] = credentials
    return aws.interactive_clients(build_config(given, {}))


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
            metavar="NAME=VALUE",
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
    from .setup.conffile import check_conf_writable, toml_block, write_covalent_conf
    from .setup.infra import check_stack_name, deploy, parse_parameters

    check_stack_name(stack_name)
    parameters = parse_parameters(parameter or [])
    if write_conf:
        check_conf_writable(str(write_conf))  # before minutes of deploying, not after
    clients = _connection(region, profile, credentials, endpoint_url)
    values = deploy(
        clients,
        stack_name,
        parameters,
        echo=_progress(),
        poll_interval_s=poll_interval,
        timeout_s=timeout,
    )
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
    from .setup.infra import check_stack_name, destroy

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
    from .setup.doctor_report import main

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
    raise typer.Exit(main(str(conf) if conf else None, overrides, as_json=json_output))


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
    from .image import publish

    def report(line: str) -> None:
        typer.echo(line, err=True)

    # Every flag is checked before the network (and before covalent.conf is read).
    if tag is not None:
        publish.check_tag(tag)
    if repository is not None:
        publish.check_repository(repository, ecr=not registry)
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
    typer.echo(result.reference)


# ------------------------------------------ report, ps, stop, logs: where tasks went
# Each reads [executors.ecs] like the executor (covalent.conf or --conf, defaults for
# keys not set), with doctor's connection overrides. Logic lives in report.py,
# records.py, tasklist.py and tasklogs.py.
_Conf = Annotated[
    Path | None,
    typer.Option(
        help="covalent.conf to read the executors.ecs section from (default: Covalent's, "
        "$COVALENT_CONFIG_DIR/covalent.conf or ~/.config/covalent/covalent.conf).",
        dir_okay=False,
    ),
]
_RegionOverride = Annotated[str | None, typer.Option(help="Override region.")]
_ProfileOverride = Annotated[str | None, typer.Option(help="Override profile.")]
_CredentialsOverride = Annotated[str | None, typer.Option(help="Override credentials.")]
_EndpointOverride = Annotated[str | None, typer.Option(help="Override endpoint_url.")]
_JsonOutput = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
_DispatchId = Annotated[str, typer.Argument(help="The Covalent dispatch id.", show_default=False)]


def _executor_config(
    conf: Path | None,
    region: str | None,
    profile: str | None,
    credentials: str | None,
    endpoint_url: str | None,
    *,
    dispatch_id: str | None = None,
) -> tuple[ExecutorConfig, Clients]:
    """The executor's configuration and AWS clients. Raises ConfigError (the error
    boundary prints it) naming a bad key or value, an unreadable file or a malformed
    dispatch id, before any AWS call."""
    import re

    from . import aws
    from .config import build_config
    from .errors import ConfigError
    from .setup.conffile import default_conf_path, read_executor_section

    if dispatch_id is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}", dispatch_id):
        raise ConfigError(
            f"dispatch id {dispatch_id!r} is not a Covalent dispatch id (letters, digits, "
            "'-', '_', '.', ':'; e.g. 5f0c6e3e-...)"
        )
    path = str(conf) if conf else default_conf_path()
    if conf is not None and not os.path.exists(path):
        raise ConfigError(f"--conf {path}: no such file; give an existing covalent.conf")
    section = read_executor_section(path) or {}
    given = {
        key: value
        for key, value in (
            ("region", region),
            ("profile", profile),
            ("credentials", credentials),
            ("endpoint_url", endpoint_url),
        )
        if value is not None
    }
    try:
        config = build_config(given, section)
    except ConfigError as err:
        where = path if section else f"the defaults ({path} has no [executors.ecs])"
        raise ConfigError(f"{err}\n  (configuration from {where})") from None
    return config, aws.interactive_clients(config)


@app.command()
def report(
    dispatch_id: _DispatchId,
    json_output: _JsonOutput = False,
    chart: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE.html",
            help="Write the timeline chart (one bar per task, coloured by phase) to this "
            "self-contained HTML file; needs the [report] extra (plotly).",
            dir_okay=False,
        ),
    ] = None,
    conf: _Conf = None,
    region: _RegionOverride = None,
    profile: _ProfileOverride = None,
    credentials: _CredentialsOverride = None,
    endpoint_url: _EndpointOverride = None,
) -> None:
    """Where a dispatch's time and money went: one row per node and attempt, and totals."""
    import json

    from . import pricing, records
    from . import report as reports
    from .errors import ECSExecutorError

    if chart is not None:
        reports.require_plotly()  # before any AWS call
    config, clients = _executor_config(
        conf, region, profile, credentials, endpoint_url, dispatch_id=dispatch_id
    )
    bucket = config.s3_bucket_name
    found = records.read_dispatch(clients.s3, bucket, dispatch_id)
    if not found:
        raise _fail(
            f"no task records for dispatch {dispatch_id} in s3://{bucket}/"
            f"{records.records_prefix(dispatch_id)} (each node's record is written when "
            "its run ends; the bucket's lifecycle rule expires them). Check the dispatch "
            "id and s3_bucket_name."
        )
    try:
        found = reports.complete_stops(
            clients.ecs, found, prices=pricing.load_price_table(config.price_table)
        )
    except ECSExecutorError as err:  # the report stands without ECS's later stop times
        typer.echo(f"note: stop times not completed from ECS: {err}", err=True)
    if chart is not None:
        chart.write_text(reports.chart_html(dispatch_id, found))
    if json_output:
        typer.echo(json.dumps(reports.document(dispatch_id, found), indent=2, default=str))
    else:
        typer.echo(reports.format_table(dispatch_id, found))
    if chart is not None:
        typer.echo(f"wrote the timeline chart to {chart}", err=True)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


@app.command()
def ps(
    dispatch: Annotated[
        str | None, typer.Option(metavar="ID", help="Only this dispatch's tasks.")
    ] = None,
    json_output: _JsonOutput = False,
    conf: _Conf = None,
    region: _RegionOverride = None,
    profile: _ProfileOverride = None,
    credentials: _CredentialsOverride = None,
    endpoint_url: _EndpointOverride = None,
) -> None:
    """Tasks started by this plugin that are still live (found in ECS, not Covalent)."""
    import json
    import time

    from . import pricing, tasklist

    config, clients = _executor_config(
        conf, region, profile, credentials, endpoint_url, dispatch_id=dispatch
    )
    tasks = tasklist.live_tasks(clients.ecs, config.ecs_cluster_name, dispatch_id=dispatch)
    rows = tasklist.ps_rows(
        tasks,
        now_s=time.time(),
        prices=pricing.load_price_table(config.price_table),
        region=clients.region,
        architecture=config.cpu_architecture,
    )
    if json_output:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo(f"no live tasks started by covalent-ecs in cluster {config.ecs_cluster_name}")
        return
    for row in rows:
        cost = pricing.format_usd(row["cost_so_far_usd"])
        typer.echo(
            f"{row['dispatch_id']}  node {row['node_id']}  {row['status']}  "
            f"{_age(row['age_s'])}  {row['vcpu']:g} vCPU / {row['memory_gb']:g} GB "
            f"{row['capacity_provider']}  {cost} so far  {row['task_arn']}"
        )


@app.command()
def stop(
    task_arns: Annotated[
        list[str] | None, typer.Argument(metavar="TASK_ARN", help="Tasks to stop.", show_default=False)
    ] = None,
    dispatch: Annotated[
        str | None, typer.Option(metavar="ID", help="Stop every live task of this dispatch.")
    ] = None,
    all_tasks: Annotated[
        bool, typer.Option("--all", help="Stop every live task this plugin started.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    conf: _Conf = None,
    region: _RegionOverride = None,
    profile: _ProfileOverride = None,
    credentials: _CredentialsOverride = None,
    endpoint_url: _EndpointOverride = None,
) -> None:
    """Stop tasks this plugin started (e.g. left running by a killed Covalent server)."""
    from . import tasklist

    chosen = [name for name, given in (("TASK_ARN", task_arns), ("--dispatch", dispatch), ("--all", all_tasks)) if given]
    if len(chosen) != 1:
        raise _fail(
            "say which tasks to stop with exactly one of --dispatch ID, --all, or task ARNs"
            + (f" (got {' and '.join(chosen)})" if chosen else "")
        )
    config, clients = _executor_config(
        conf, region, profile, credentials, endpoint_url, dispatch_id=dispatch
    )
    cluster = config.ecs_cluster_name
    if task_arns:
        tasks = tasklist.tasks_by_arn(clients.ecs, cluster, task_arns)
        scope = "named tasks"
    else:
        tasks = tasklist.live_tasks(clients.ecs, cluster, dispatch_id=dispatch)
        scope = f"dispatch {dispatch}" if dispatch else "--all"
    tasks = [task for task in tasks if task.get("lastStatus") != "STOPPED"]
    if not tasks:
        typer.echo("no live tasks to stop")
        return
    for task in tasks:
        dispatch_id, node_id = tasklist.parse_started_by(task.get("startedBy")) or ("?", "?")
        typer.echo(f"{task['taskArn']}  {task.get('lastStatus')}  dispatch {dispatch_id} node {node_id}")
    if not yes:
        typer.confirm(f"Stop these {len(tasks)} tasks?", abort=True)
    reason = tasklist.stop_reason(scope)
    failed = 0
    for arn, problem in tasklist.stop(clients.ecs, tasks, reason, cluster):
        if problem:
            failed += 1
            typer.echo(f"could not stop {arn}: {problem}", err=True)
        else:
            typer.echo(f"stopped {arn} ({reason})")
    raise typer.Exit(1 if failed else 0)


@app.command()
def logs(
    dispatch_id: _DispatchId,
    node_id: Annotated[str, typer.Argument(help="The node id in that dispatch.", show_default=False)],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until the task stops.")
    ] = False,
    attempt: Annotated[
        int | None,
        typer.Option(min=1, help="The node's N-th task (1 = first; default: the latest)."),
    ] = None,
    conf: _Conf = None,
    region: _RegionOverride = None,
    profile: _ProfileOverride = None,
    credentials: _CredentialsOverride = None,
    endpoint_url: _EndpointOverride = None,
) -> None:
    """A node's task output (its CloudWatch log stream)."""
    from . import records, taskdefs, tasklist, tasklogs

    config, clients = _executor_config(
        conf, region, profile, credentials, endpoint_url, dispatch_id=dispatch_id
    )
    cluster = config.ecs_cluster_name
    attempts = tasklist.node_attempts(
        records.read_dispatch(clients.s3, config.s3_bucket_name, dispatch_id, node_id),
        tasklist.node_tasks(clients.ecs, cluster, dispatch_id, node_id),
        log_group=config.ecs_task_log_group_name,
    )
    if not attempts:
        raise _fail(
            f"no task found for dispatch {dispatch_id} node {node_id}: neither a record in "
            f"s3://{config.s3_bucket_name}/ nor a task in ECS cluster {cluster}"
        )
    if attempt is not None and attempt > len(attempts):
        raise _fail(f"--attempt {attempt}: node {node_id} has {len(attempts)} task(s)")
    chosen = attempts[(attempt or len(attempts)) - 1]
    arn = chosen["task_arn"]
    typer.echo(f"# {arn} ({chosen['log_group']})", err=True)
    tasklogs.follow(
        clients.logs,
        chosen["log_group"],
        taskdefs.log_stream_name(arn),
        echo=typer.echo,
        running=(lambda: not tasklist.is_stopped(clients.ecs, cluster, arn)) if follow else (lambda: False),
    )


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Tools for the Covalent ECS Fargate executor."""


def main() -> None:
    app()
