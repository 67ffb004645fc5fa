"""The agent's one seam for how a task's container starts (sandbox/starters.py).

Starters defined here are plugged into a real in-process sandbox: the task goes
through RunTask (or the executor), the agent asks the starters in order, and what a
starter observed, started and reported is checked against what ECS then shows.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sandbox_tasks import log_messages, run_one_container, stopped_record
from waiting import wait_for

from covalent_ecs_executor import ECSExecutor
from covalent_ecs_executor.sandbox import Sandbox
from covalent_ecs_executor.sandbox.starters import (
    ContainerSpec,
    TaskProcess,
    host_argv,
    load_starter,
    start_process_group,
)
from covalent_ecs_runtime import contract

pytestmark = pytest.mark.integration

RUN_CEILING_S = 60

STAND_IN_IMAGE = "example.invalid/stand-in:latest"
UNSTARTABLE_IMAGE = "example.invalid/unstartable:latest"
# A stand-in container that was never signalled ends by itself after this long.
STAND_IN_CEILING_S = 60.0


class RecordingStarter:
    """Starts the tasks of one dispatch on the host, noting what it was asked and did."""

    def __init__(self, dispatch_id: str) -> None:
        self.dispatch_id = dispatch_id
        self.specs: list[ContainerSpec] = []
        self.started: list[TaskProcess] = []
        self.closed = False

    def accepts(self, spec: ContainerSpec) -> bool:
        return spec.env.get(contract.ENV_TASK_LABEL, "").startswith(f"{self.dispatch_id}/")

    def start(self, spec: ContainerSpec) -> TaskProcess:
        self.specs.append(spec)
        process = start_process_group(host_argv(spec.argv), spec)
        self.started.append(process)
        return process

    def close(self) -> None:
        self.closed = True


class ThreadContainer:
    """A container with no host process (what a stand-in with no interpreter per task
    looks like to the agent): a thread that writes a line, then exits with the code
    its command names, or waits for a signal when the command is ``wait``."""

    pid = None

    def __init__(self, spec: ContainerSpec) -> None:
        self.argv = list(spec.argv)
        self.env = dict(spec.env)
        self.returncode: int | None = None
        self._output_fd = os.dup(spec.output_fd)  # the agent closes its copy (starters.py)
        self.signals: list[int] = []
        self._signalled = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            os.write(self._output_fd, f"stand-in running {' '.join(self.argv)}\n".encode())
            if self.argv == ["wait"]:
                self._signalled.wait(STAND_IN_CEILING_S)
                code = -self.signals[0] if self.signals else 0
            else:
                code = int(self.argv[0])
        finally:
            os.close(self._output_fd)
        self.returncode = code

    def poll(self) -> int | None:
        return self.returncode

    def wait(self) -> int:
        self._thread.join()
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        self._signalled.set()


class ThreadStarter:
    def __init__(self) -> None:
        self.started: list[ThreadContainer] = []

    def accepts(self, spec: ContainerSpec) -> bool:
        return spec.image == STAND_IN_IMAGE

    def start(self, spec: ContainerSpec) -> TaskProcess:
        container = ThreadContainer(spec)
        self.started.append(container)
        return container

    def close(self) -> None:
        pass


class RefusingStarter:
    def accepts(self, spec: ContainerSpec) -> bool:
        return spec.image == UNSTARTABLE_IMAGE

    def start(self, spec: ContainerSpec) -> TaskProcess:
        raise OSError("no runtime for this image here")

    def close(self) -> None:
        pass


@pytest.fixture
def plugged() -> Iterator[tuple[Sandbox, RecordingStarter, ThreadStarter]]:
    recording, threads = RecordingStarter("starter-seam"), ThreadStarter()
    with Sandbox(
        provision_delay_s=0, deprovision_delay_s=0, starters=[recording, threads, RefusingStarter()]
    ) as sandbox:
        yield sandbox, recording, threads
    assert recording.closed  # the sandbox closes its starters when it stops


def test_a_plugged_starter_starts_the_tasks_it_accepts_and_the_host_the_rest(
    plugged: tuple[Sandbox, RecordingStarter, ThreadStarter],
) -> None:
    sandbox, recording, _ = plugged
    config = sandbox.executor_config
    executor = ECSExecutor(**config)

    def where_am_i() -> dict[str, Any]:  # nested: pickled by value
        import os

        return {"pid": os.getpid(), "cwd": os.getcwd()}

    # Each run takes about a second: the ceiling only bounds a broken one.
    mine = asyncio.run(asyncio.wait_for(
        executor.run(where_am_i, [], {}, {"dispatch_id": "starter-seam", "node_id": 3, "results_dir": "."}),
        RUN_CEILING_S,
    ))
    other = asyncio.run(asyncio.wait_for(
        executor.run(where_am_i, [], {}, {"dispatch_id": "not-seam", "node_id": 0, "results_dir": "."}),
        RUN_CEILING_S,
    ))

    (spec,) = recording.specs  # asked for its own dispatch's task only
    (process,) = recording.started
    records = {r["env"].get(contract.ENV_TASK_LABEL): r for r in sandbox.tasks()}
    record = records["starter-seam/3"]
    # What the starter was given: ECS's argv unchanged, the task's environment and dir.
    assert spec.task_arn == record["taskArn"]
    assert spec.argv[:3] == contract.ENTRY_POINT
    # The runner image as the task definition names it: pinned by digest.
    assert re.search(rf"/{config['ecr_repo_name']}@sha256:[0-9a-f]{{64}}$", spec.image), spec.image
    assert spec.env[contract.ENV_TASK_LABEL] == "starter-seam/3"
    assert spec.env["AWS_ENDPOINT_URL"] == sandbox.endpoint_url
    assert spec.cwd == spec.env["HOME"] == mine["cwd"]
    # What it started is what ran the function, and what the agent reports.
    assert mine["pid"] == process.pid == record["pid"]
    assert record["argv"] == process.argv and process.argv[0] != spec.argv[0]
    assert record["exitCode"] == 0
    # The other dispatch's task went to the host starter.
    assert records["not-seam/0"]["pid"] == other["pid"] != process.pid


def test_a_container_without_a_host_process_exits_logs_and_stops_like_one(
    plugged: tuple[Sandbox, RecordingStarter, ThreadStarter],
) -> None:
    sandbox, _, threads = plugged
    exits = run_one_container(sandbox, image=STAND_IN_IMAGE, command=["7"], log_prefix="seam")
    waits = run_one_container(sandbox, image=STAND_IN_IMAGE, command=["wait"], log_prefix="seam")

    record = stopped_record(sandbox, exits)
    assert record["pid"] is None and record["argv"] == ["7"]
    assert record["exitCode"] == 7
    assert record["stopCode"] == "EssentialContainerExited"
    assert record["peakRssBytes"] == 0  # nothing on the host to measure
    assert log_messages(sandbox, record) == ["stand-in running 7"]

    wait_for(lambda: len(threads.started) == 2, what="the waiting stand-in to start")
    ecs = sandbox.client("ecs", internal=True)
    ecs.stop_task(cluster=sandbox.executor_config["ecs_cluster_name"], task=waits, reason="test")
    record = stopped_record(sandbox, waits)
    assert record["exitCode"] == 143  # SIGTERM, as Docker reports it
    assert record["stopCode"] == "UserInitiated"
    assert threads.started[1].signals[0] == signal.SIGTERM
    assert log_messages(sandbox, record) == ["stand-in running wait"]


def test_a_starter_that_cannot_start_a_container_fails_the_task_to_start(
    plugged: tuple[Sandbox, RecordingStarter, ThreadStarter],
) -> None:
    sandbox, _, _ = plugged
    record = stopped_record(
        sandbox, run_one_container(sandbox, image=UNSTARTABLE_IMAGE, command=["true"])
    )
    assert record["stopCode"] == "TaskFailedToStart"
    assert record["stoppedReason"] == "CannotStartContainerError: no runtime for this image here"
    assert record["exitCode"] is None and record["pid"] is None


def test_load_starter_names_what_is_wrong_with_a_starter_path() -> None:
    with pytest.raises(ValueError, match="is not MODULE:ATTR"):
        load_starter("no_colon")
    with pytest.raises(ValueError, match="cannot import 'no_such_module_here'"):
        load_starter("no_such_module_here:Starter")
    with pytest.raises(ValueError, match="has no 'Nope'"):
        load_starter("covalent_ecs_executor.sandbox.starters:Nope")
    with pytest.raises(ValueError, match="is not a process starter"):
        load_starter("covalent_ecs_executor.sandbox.starters:NO_COMMAND")
    starter = load_starter("covalent_ecs_executor.sandbox.starters:HostStarter")
    assert type(starter).__name__ == "HostStarter"  # a class is instantiated
