"""Run a sandbox in the foreground until Ctrl-C / SIGTERM (``covalent-ecs sandbox``).

Prints the endpoint, the ``[executors.ecs]`` block to paste into covalent.conf and an
``export AWS_ENDPOINT_URL=...`` hint, then one line per task start and stop.
Optionally writes the block into a covalent.conf (``write_conf``, checked writable
before the sandbox starts) and a JSON ready file (``ready_file``: written atomically
once the sandbox is seeded; what ``SandboxProcess`` waits for).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence

from ..setup.conffile import toml_block, write_covalent_conf
from .agent import TaskRun
from .sandbox import Sandbox
from .starters import ProcessStarter

Echo = Callable[[str], None]


def _echo(line: str) -> None:
    print(line, flush=True)


def write_ready_file(path: str, sandbox: Sandbox) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(
            {
                "endpoint_url": sandbox.endpoint_url,
                "pid": os.getpid(),
                "executor_config": sandbox.executor_config,
                "started_in_s": sandbox.started_in_s,
            },
            f,
        )
    os.replace(tmp, path)  # atomic: a reader never sees half a file


def conf_write_problem(path: str) -> str | None:
    """Why ``path`` cannot take the ``[executors.ecs]`` block, or None.

    Tries what writing it does (create the folder, write a file beside it, read the
    existing conf) so that an unwritable path is refused before the sandbox starts.
    """
    import toml  # covalent's own config library, as conffile.py uses

    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        probe = f"{path}.tmp"
        with open(probe, "w"):
            pass
        os.remove(probe)
        if os.path.exists(path):
            with open(path) as f:
                toml.load(f)
    except OSError as err:
        return f"cannot write {path}: {err.strerror or err}"
    except toml.TomlDecodeError as err:
        return f"cannot update {path}: it is not valid TOML ({err})"
    return None


def describe_task_event(event: str, run: TaskRun) -> str:
    short_id = run.task_id[:8]
    if event == "started":
        return f"task {short_id} started: pid {run.pid}: {' '.join(run.argv)[:200]}"
    reason = run.task.stopped_reason or ""
    return f"task {short_id} stopped: exit code {run.exit_code}, {run.task.stop_code}" + (
        f": {reason}" if reason else ""
    )


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    state_dir: str | None = None,
    ready_file: str | None = None,
    write_conf: str | None = None,
    provision_delay_s: float = 0.2,
    deprovision_delay_s: float = 0.3,
    aws_limits: bool = False,
    starters: Sequence[ProcessStarter] = (),
    pull_bandwidth_mb_s: float | None = None,
    echo: Echo = _echo,
) -> int:
    """Run until SIGINT/SIGTERM; 0, or 1 when ``write_conf`` cannot be written."""
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    problem = conf_write_problem(write_conf) if write_conf else None
    if problem:
        print(f"error: {problem}", file=sys.stderr, flush=True)
        return 1
    # Made first: a host it refuses (not loopback) raises before any handler is replaced.
    sandbox = Sandbox(
        host=host,
        port=port,
        state_dir=state_dir,
        provision_delay_s=provision_delay_s,
        deprovision_delay_s=deprovision_delay_s,
        aws_limits=aws_limits,
        starters=starters,
        pull_bandwidth_mb_s=pull_bandwidth_mb_s,
        on_task_event=lambda event, run: echo(describe_task_event(event, run)),
    )
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            sandbox.start()
        except OSError as err:  # e.g. an unwritable --state-dir
            print(f"error: cannot start the sandbox: {err}", file=sys.stderr, flush=True)
            return 1
        config = sandbox.executor_config
        echo(f"covalent-ecs sandbox: AWS API and local Fargate agent at {sandbox.endpoint_url}")
        echo(f"(started in {sandbox.started_in_s:.2f} s; state in {sandbox.state_dir})")
        if aws_limits:
            echo("AWS API rate limits are on: ECS calls beyond AWS's token buckets get 'Rate exceeded'")
        echo("")
        echo("Add this to covalent.conf (or use --write-conf):")
        echo("")
        echo(toml_block(config))
        echo("")
        echo("Point other AWS tools at it with:")
        echo(f"  export AWS_ENDPOINT_URL={sandbox.endpoint_url}")
        echo(f"  export AWS_SHARED_CREDENTIALS_FILE={config['credentials']} AWS_PROFILE=sandbox")
        echo("")
        if write_conf:
            try:
                write_covalent_conf(write_conf, config)
            except (OSError, ValueError) as err:  # changed since the check above
                print(f"error: cannot write {write_conf}: {err}", file=sys.stderr, flush=True)
                return 1
            echo(f"wrote [executors.ecs] into {write_conf}")
            if not port or not state_dir:
                echo(
                    "(it names this run's port and credentials file: pass --port N and"
                    " --state-dir DIR to keep it valid across restarts)"
                )
        if ready_file:
            write_ready_file(ready_file, sandbox)
        echo("Ctrl-C stops it.")
        stop.wait()
        echo("stopping the sandbox")
    finally:
        sandbox.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
