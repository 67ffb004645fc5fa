"""The local Fargate agent: runs the sandbox's ECS tasks as host processes.

One thread owns every task's lifecycle. The patched moto backend (moto_patches.py)
hands it each new task and each StopTask; on every tick (``tick_s``, 25 ms) it moves
tasks through ECS's states, writing them straight onto moto's task objects:

    PROVISIONING -> PENDING (image "pull") -> RUNNING -> container exits
      -> container STOPPED with its exitCode at once
      -> task DEACTIVATING -> STOPPING -> DEPROVISIONING -> STOPPED
         over ``deprovision_delay_s`` (real ECS takes many seconds here: a client
         should notice the container's exit before the task is STOPPED).

The container's argv is the definition's ``entryPoint`` + (the override's ``command``,
else the definition's). Its environment is what the container would see: the
definition's ``environment`` and ``secrets`` (read from the sandbox's Secrets Manager /
SSM Parameter Store, as ECS does with the execution role: task_secrets.py), the
override's on top, plus AWS endpoint/credentials/
region pointing at the sandbox, HOME (a per-task directory, also the cwd) and the
host's PATH. How that becomes a process is the starters' business (starters.py): the
first of ``AgentSettings.starters`` that accepts the task starts it, else a plain
subprocess on this host (``HostStarter``).

Like ECS, the agent reports: image pull failures (CannotPullContainerError, no exit
code, TaskFailedToStart); StopTask (SIGTERM to the container, SIGKILL after
``stop_timeout_s``; UserInitiated); memory over the task's limit (SIGKILL, exit 137,
OutOfMemoryError), checked from /proc every ``memory_check_interval_s``.

Scripted faults (faults.py) are picked per task when the agent adopts it, matched by
the task's ``COVALENT_ECS_TASK`` label, and applied with the same words ECS uses.

Only reads and writes moto objects (never HTTP), so nothing it does is counted.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .faults import Fault, FaultBook, forge_staged_object, task_label
from .images import image_pull_error, image_size_bytes
from .log_pump import AwsLogsSink, OutputPump, awslogs_stream_name
from .moto_patches import utc_now
from .procs import exit_code_from_returncode, group_rss_bytes
from .starters import ContainerSpec, HostStarter, ProcessStarter, TaskProcess
from .task_secrets import SecretUnavailable, container_secrets, secret_names

# ECS's words, so a client's failure classification sees what it would see on AWS.
STOP_CODE_EXITED = "EssentialContainerExited"
STOP_CODE_FAILED_TO_START = "TaskFailedToStart"
STOP_CODE_SPOT = "SpotInterruption"
REASON_SPOT = "Your Spot Task was interrupted."
REASON_EXITED = "Essential container in task exited"
REASON_OOM = "OutOfMemoryError: Container killed due to memory usage"
EXIT_CODE_OOM = 137

_SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE_KEY", re.IGNORECASE)
# After the process exits, wait this long at most for its output pipe to drain (a
# grandchild may hold it open; the agent kills the group, so this is a backstop).
_OUTPUT_DRAIN_S = 2.0
_DEPROVISION_STEPS = ("DEACTIVATING", "STOPPING", "DEPROVISIONING")

TaskEventListener = Callable[[str, "TaskRun"], None]


def mask_env(env: dict[str, str], hidden: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
    """The environment with secret-looking values, and ``hidden`` ones, hidden (for the
    control API)."""
    return {k: ("****" if k in hidden or _SECRET_NAME.search(k) else v) for k, v in env.items()}


@dataclass(frozen=True)
class AgentSettings:
    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    work_dir: str
    provision_delay_s: float = 0.2
    deprovision_delay_s: float = 0.3
    stop_timeout_s: float = 2.0
    enforce_memory: bool = True
    memory_check_interval_s: float = 0.1
    log_flush_interval_s: float = 0.2
    tick_s: float = 0.025
    # Asked in order for each task; HostStarter takes what none accepts (starters.py).
    starters: tuple[ProcessStarter, ...] = ()
    # Emulate image pulls: PENDING lasts the image's compressed size over this many MB/s
    # (images.image_size_bytes; an image of unknown size pulls at once). None: off.
    pull_bandwidth_mb_s: float | None = None


@dataclass
class TaskRun:
    """The agent's record of one task (what ``/_sandbox/tasks`` shows)."""

    task: Any
    task_arn: str
    task_id: str
    container: Any
    definition: dict[str, Any]
    phase: str = "PROVISIONING"
    due: float = 0.0
    history: list[tuple[str, float]] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    pid: int | None = None
    process: TaskProcess | None = None
    pump: OutputPump | None = None
    log_stream: str | None = None
    exit_code: int | None = None
    container_reason: str | None = None
    stop_requested: bool = False
    term_sent_at: float | None = None
    killed: bool = False
    oom: bool = False
    memory_limit_mib: int | None = None
    peak_rss_bytes: int = 0
    exited_at: float | None = None
    deprovision_started: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    label: str | None = None
    fault: Fault | None = None
    fault_due: float | None = None  # oom / spot_interruption: when it strikes
    slow_start_done: bool = False

    def record(self) -> dict[str, Any]:
        return {
            "taskArn": self.task_arn,
            "label": self.label,
            "fault": self.fault.kind if self.fault else None,
            "lastStatus": self.task.last_status,
            "statusHistory": [{"status": s, "at": t} for s, t in self.history],
            "argv": self.argv,
            "env": mask_env(self.env, secret_names(self.definition)),
            "pid": self.pid,
            "exitCode": self.exit_code,
            "containerReason": self.container_reason,
            "stopCode": self.task.stop_code,
            "stoppedReason": self.task.stopped_reason,
            "logStream": self.log_stream,
            "memoryLimitMiB": self.memory_limit_mib,
            "peakRssBytes": self.peak_rss_bytes,
            "startedAt": self.started_at,
            "endedAt": self.ended_at,
        }


class FargateAgent:
    """Runs ECS tasks found in moto's backend as local processes (one thread)."""

    def __init__(
        self,
        settings: AgentSettings,
        *,
        on_event: TaskEventListener | None = None,
        faults: FaultBook | None = None,
    ):
        self.settings = settings
        self._on_event = on_event
        self._faults = faults
        self._inbox: deque[tuple[str, Any]] = deque()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # guards _runs (read by the control API)
        self._runs: dict[str, TaskRun] = {}
        self._active: list[TaskRun] = []
        self._next_memory_check = 0.0
        self._next_flush = 0.0
        self._thread = threading.Thread(target=self._loop, name="sandbox-agent", daemon=True)
        self._host = HostStarter()
        self._starters = (*settings.starters, self._host)

    # -- called from moto's request threads (TaskHooks) -----------------------------
    def task_created(self, task: Any) -> None:
        self._inbox.append(("created", task))
        self._wake.set()

    def stop_requested(self, task: Any) -> None:
        self._inbox.append(("stop", task))
        self._wake.set()

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Kill every task process and end the agent thread."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=10)
        for run in self._active:
            if run.process is not None:
                run.process.send_signal(signal.SIGKILL)
                run.process.wait()
        for starter in self._starters:
            with contextlib.suppress(Exception):  # one starter's failure must not stop the rest
                starter.close()

    def records(self) -> list[dict[str, Any]]:
        with self._lock:
            runs = list(self._runs.values())
        return [run.record() for run in runs]

    def running_count(self) -> int:
        return len(self._active)

    # -- the loop -------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.settings.tick_s)
            self._wake.clear()
            if self._stopping.is_set():
                break
            self._drain_inbox()
            now = time.monotonic()
            if self.settings.enforce_memory and now >= self._next_memory_check:
                self._next_memory_check = now + self.settings.memory_check_interval_s
                self._check_memory()
            if now >= self._next_flush:
                self._next_flush = now + self.settings.log_flush_interval_s
                for run in self._active:
                    self._flush(run, partial_after_s=self.settings.log_flush_interval_s)
            still_active = []
            for run in self._active:
                try:
                    self._advance(run, now)
                except Exception as exc:  # noqa: BLE001 - one bad task must not stop the rest
                    self._fail_to_start(run, f"SandboxAgentError: {exc!r}")
                if run.phase != "DONE":
                    still_active.append(run)
            self._active = still_active

    def _drain_inbox(self) -> None:
        while self._inbox:
            kind, task = self._inbox.popleft()
            if kind == "created":
                self._adopt(task)
            else:
                run = self._runs.get(task.task_arn)
                if run is not None:
                    run.stop_requested = True

    def _adopt(self, task: Any) -> None:
        container = task.containers[0]
        definitions = self._task_definition(task).container_definitions
        definition = next(
            (d for d in definitions if d.get("name") == container.name), definitions[0]
        )
        run = TaskRun(
            task=task,
            task_arn=task.task_arn,
            task_id=task.id,
            container=container,
            definition=definition,
            due=time.monotonic() + self.settings.provision_delay_s / 2,
        )
        run.history.append(("PROVISIONING", time.time()))
        run.memory_limit_mib = _memory_limit_mib(task, definition)
        run.label = task_label(_container_override(task, container.name).get("environment"))
        if self._faults is not None:
            run.fault = self._faults.take_task_fault(run.label, run.task_arn)
        self._forge_if_hostile(run, "payload")  # staged before RunTask: replace it now
        if task.desired_status == "STOPPED":
            run.stop_requested = True
        with self._lock:
            self._runs[run.task_arn] = run
        self._active.append(run)

    @staticmethod
    def _task_definition(task: Any) -> Any:
        backend = task._backend
        return backend.describe_task_definition(task.task_definition_arn)

    def _set_status(self, run: TaskRun, status: str) -> None:
        run.task.last_status = status
        run.history.append((status, time.time()))

    def _advance(self, run: TaskRun, now: float) -> None:
        if run.phase == "PROVISIONING":
            if run.stop_requested:
                self._stop_before_start(run, now)
            elif now >= run.due:
                # ECS: the network interface is attached, then the image pull starts.
                run.task.connectivity_at = run.task.pull_started_at = utc_now()
                self._set_status(run, "PENDING")
                run.phase = "PENDING"
                run.due = now + self.settings.provision_delay_s / 2 + self._pull_time_s(run)
        elif run.phase == "PENDING":
            if run.stop_requested:
                self._stop_before_start(run, now)
            elif now >= run.due:
                self._launch(run, now)
        elif run.phase == "RUNNING":
            self._watch_running(run, now)
        elif run.phase == "EXITED":
            self._finish_container(run, now)
        elif run.phase == "DEPROVISIONING":
            self._deprovision(run, now)

    def _pull_time_s(self, run: TaskRun) -> float:
        bandwidth = self.settings.pull_bandwidth_mb_s
        size = image_size_bytes(run.definition.get("image", "")) if bandwidth else None
        return size / (bandwidth * 1e6) if size and bandwidth else 0.0

    # -- starting -------------------------------------------------------------------
    def _launch(self, run: TaskRun, now: float) -> None:
        task, container, definition = run.task, run.container, run.definition
        fault = run.fault.kind if run.fault else None
        if fault == "slow_start" and not run.slow_start_done:
            assert run.fault is not None
            run.slow_start_done = True  # the "image pull" takes delay_s longer
            run.due = now + run.fault.delay_s
            return
        if fault == "pull_failure":
            assert run.fault is not None
            task.pull_stopped_at = utc_now()
            reason = run.fault.reason or _injected_pull_error(definition.get("image", ""))
            self._fail_to_start(run, reason)
            return
        if fault == "start_failure":
            assert run.fault is not None
            task.pull_stopped_at = utc_now()
            self._fail_to_start(run, run.fault.reason or _INJECTED_START_ERROR)
            return
        pull_error = image_pull_error(definition.get("image", ""))
        task.pull_stopped_at = utc_now()
        if pull_error:
            self._fail_to_start(run, pull_error)
            return
        override = _container_override(task, container.name)
        command = override["command"] if "command" in override else definition.get("command")
        argv = list(definition.get("entryPoint") or []) + list(command or [])
        starter: ProcessStarter | None = None
        if fault == "exit_without_result":  # the fault replaces the container, on the host
            assert run.fault is not None
            argv = [sys.executable, "-c", _EXIT_WITHOUT_RESULT.format(code=run.fault.exit_code)]
            starter = self._host
        work_dir = os.path.join(self.settings.work_dir, run.task_id)
        os.makedirs(work_dir, exist_ok=True)
        run.argv = argv
        try:
            run.env = self._environment(task, definition, override, home=work_dir)
        except SecretUnavailable as exc:
            self._fail_to_start(run, str(exc))
            return
        sink, error = self._log_sink(run)
        if error:
            self._fail_to_start(run, error)
            return
        read_fd = -1
        try:
            if sink is not None:
                read_fd, write_fd = os.pipe()
            else:
                output_log = os.path.join(work_dir, "output.log")
                write_fd = os.open(output_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                spec = ContainerSpec(
                    task_arn=run.task_arn,
                    image=definition.get("image", ""),
                    argv=argv,
                    env=run.env,
                    cwd=work_dir,
                    output_fd=write_fd,
                )
                if starter is None:
                    starter = next(s for s in self._starters if s.accepts(spec))
                process = starter.start(spec)
            finally:
                os.close(write_fd)  # the container holds its own copy (starters.py)
        except BaseException as exc:
            if read_fd >= 0:
                os.close(read_fd)
            if not isinstance(exc, OSError):
                raise  # a starter's bug: the loop fails this task as a SandboxAgentError
            self._fail_to_start(run, f"CannotStartContainerError: {exc}")
            return
        run.process = process
        run.pid = process.pid
        run.argv = list(process.argv)
        run.env = dict(process.env)
        if sink is not None:
            run.pump = OutputPump(read_fd, sink, name=f"sandbox-logs-{run.task_id[:8]}")
        run.started_at = time.time()
        task.started_at = utc_now()
        container.last_status = "RUNNING"
        self._set_status(run, "RUNNING")
        run.phase = "RUNNING"
        if fault in ("oom", "spot_interruption"):
            assert run.fault is not None
            run.fault_due = now + run.fault.after_s
        self._emit("started", run)

    def _environment(
        self, task: Any, definition: dict[str, Any], override: dict[str, Any], *, home: str
    ) -> dict[str, str]:
        s = self.settings
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": home,
            # What the task role and ECS would provide, pointed at the sandbox.
            "AWS_ENDPOINT_URL": s.endpoint_url,
            "AWS_ACCESS_KEY_ID": s.access_key_id,
            "AWS_SECRET_ACCESS_KEY": s.secret_access_key,
            "AWS_DEFAULT_REGION": task.region_name,
            "AWS_REGION": task.region_name,
        }
        for item in definition.get("environment") or []:
            env[item["name"]] = item.get("value", "")
        # ECS reads the definition's secrets with the execution role as the task starts.
        env.update(container_secrets(definition))
        for item in override.get("environment") or []:
            env[item["name"]] = item.get("value", "")
        return env

    def _log_sink(self, run: TaskRun) -> tuple[AwsLogsSink | None, str | None]:
        config = run.definition.get("logConfiguration") or {}
        if config.get("logDriver") != "awslogs":
            return None, None
        options = config.get("options") or {}
        group = options.get("awslogs-group")
        prefix = options.get("awslogs-stream-prefix")
        region = options.get("awslogs-region") or run.task.region_name
        if not group:
            return None, "ResourceInitializationError: awslogs-group is required"
        # Without a prefix ECS names the stream after the container's Docker id; the
        # sandbox has none, so it uses the task id.
        stream = (
            awslogs_stream_name(prefix, run.container.name, run.task_id) if prefix else run.task_id
        )
        sink = AwsLogsSink(
            account_id=run.task._account_id, region=region, group=group, stream=stream
        )
        if not sink.has_group():
            if str(options.get("awslogs-create-group", "")).lower() == "true":
                sink.create_group()
            else:
                return None, (
                    "ResourceInitializationError: failed to validate logger args: "
                    f"The specified log group does not exist: {group}"
                )
        try:
            sink.create_stream()
        except Exception as exc:  # noqa: BLE001 - e.g. the stream exists already
            if "exist" not in str(exc).lower():
                return None, f"ResourceInitializationError: {exc}"
        run.log_stream = f"{group}:{stream}"
        return sink, None

    # -- running --------------------------------------------------------------------
    def _watch_running(self, run: TaskRun, now: float) -> None:
        process = run.process
        assert process is not None
        if run.fault_due is not None and now >= run.fault_due:
            run.fault_due = None
            self._strike(run)
        if run.stop_requested and run.term_sent_at is None:
            process.send_signal(signal.SIGTERM)
            run.term_sent_at = now
        elif (
            run.term_sent_at is not None
            and not run.killed
            and now - run.term_sent_at >= self.settings.stop_timeout_s
        ):
            process.send_signal(signal.SIGKILL)
            run.killed = True
        returncode = process.poll()
        if returncode is None:
            return
        # The container is gone once its main process exits: like Docker tearing down
        # the PID namespace, kill whatever the process left behind.
        process.send_signal(signal.SIGKILL)
        self._forge_if_hostile(run, "result")  # written, not yet reported: the client waits
        run.exit_code = EXIT_CODE_OOM if run.oom else exit_code_from_returncode(returncode)
        run.exited_at = now
        run.phase = "EXITED"
        self._finish_container(run, now)

    def _forge_if_hostile(self, run: TaskRun, target: str) -> None:
        """The hostile_overwrite fault (faults.py) on this task's ``target`` object."""
        fault = run.fault
        if fault is None or fault.kind != "hostile_overwrite" or fault.target != target:
            return
        command = _container_override(run.task, run.container.name).get("command") or []
        fault.applied_to.append(forge_staged_object(fault, command))

    def _strike(self, run: TaskRun) -> None:
        """A running task's scripted fault: the OOM killer, or Spot reclaiming it."""
        assert run.process is not None and run.fault is not None
        if run.fault.kind == "oom":
            run.oom = True
            run.process.send_signal(signal.SIGKILL)
            return
        task = run.task
        if task.desired_status != "STOPPED":
            task.desired_status = "STOPPED"
            task.stop_code = STOP_CODE_SPOT
            task.stopped_reason = REASON_SPOT
            task.stopping_at = utc_now()
        run.stop_requested = True  # SIGTERM, then SIGKILL after stop_timeout_s

    def _check_memory(self) -> None:
        # A container without a host process (pid None) has no memory to measure.
        limited = {
            run.process.pid: (run, run.process)
            for run in self._active
            if run.phase == "RUNNING"
            and run.process is not None
            and run.process.pid is not None
            and run.memory_limit_mib
        }
        if not limited:
            return
        for pgid, rss in group_rss_bytes(set(limited)).items():
            run, process = limited[pgid]
            run.peak_rss_bytes = max(run.peak_rss_bytes, rss)
            if not run.oom and rss > (run.memory_limit_mib or 0) * 1024 * 1024:
                run.oom = True
                process.send_signal(signal.SIGKILL)

    def _flush(self, run: TaskRun, *, partial_after_s: float) -> None:
        if run.pump is not None:
            # The log group may have been deleted under a running task: drop the output.
            with contextlib.suppress(Exception):
                run.pump.flush(partial_after_s=partial_after_s)

    # -- stopping -------------------------------------------------------------------
    def _finish_container(self, run: TaskRun, now: float) -> None:
        """Once the output is drained: container STOPPED, task starts deprovisioning."""
        assert run.exited_at is not None
        draining = run.pump is not None and not run.pump.done.is_set()
        if draining and now - run.exited_at < _OUTPUT_DRAIN_S:
            return
        self._flush(run, partial_after_s=0)
        task, container = run.task, run.container
        if run.oom:
            run.container_reason = REASON_OOM
        container.reason = run.container_reason
        container.exitCode = run.exit_code
        container.last_status = "STOPPED"
        run.ended_at = time.time()
        if not task.stop_code:
            task.stop_code = STOP_CODE_EXITED
            task.stopped_reason = REASON_OOM if run.oom else REASON_EXITED
            task.stopping_at = utc_now()
        task.desired_status = "STOPPED"
        task.execution_stopped_at = utc_now()
        self._begin_deprovision(run, now)

    def _stop_before_start(self, run: TaskRun, now: float) -> None:
        """StopTask while PROVISIONING/PENDING: the container never runs."""
        run.container.last_status = "STOPPED"
        run.ended_at = time.time()
        run.task.execution_stopped_at = utc_now()
        self._begin_deprovision(run, now)

    def _fail_to_start(self, run: TaskRun, reason: str) -> None:
        """The container never ran: no exit code, stopCode TaskFailedToStart."""
        task, container = run.task, run.container
        run.container_reason = reason
        container.reason = reason
        container.exitCode = None
        container.last_status = "STOPPED"
        run.ended_at = time.time()
        task.stop_code = STOP_CODE_FAILED_TO_START
        task.stopped_reason = reason
        task.stopping_at = utc_now()
        task.desired_status = "STOPPED"
        task.execution_stopped_at = utc_now()
        self._begin_deprovision(run, time.monotonic())

    def _begin_deprovision(self, run: TaskRun, now: float) -> None:
        run.phase = "DEPROVISIONING"
        run.deprovision_started = now
        self._set_status(run, _DEPROVISION_STEPS[0])
        self._deprovision(run, now)

    def _deprovision(self, run: TaskRun, now: float) -> None:
        assert run.deprovision_started is not None
        delay = self.settings.deprovision_delay_s
        elapsed = now - run.deprovision_started
        if elapsed >= delay:
            run.task.stopped_at = utc_now()
            self._set_status(run, "STOPPED")
            run.phase = "DONE"
            run.pump = None
            self._emit("stopped", run)
            return
        step = _DEPROVISION_STEPS[min(int(elapsed / delay * 3), 2)] if delay > 0 else "STOPPED"
        if run.task.last_status != step:
            self._set_status(run, step)

    def _emit(self, event: str, run: TaskRun) -> None:
        if self._on_event is not None:
            with contextlib.suppress(Exception):  # a listener must not break the agent
                self._on_event(event, run)


# What ECS reports for these causes (stopped-task error codes), marked as injected.
_INJECTED_START_ERROR = (
    "ResourceInitializationError: unable to pull secrets or registry auth: execution "
    "resource retrieval failed: unable to retrieve secret from asm: There is a connection "
    "issue between the task and AWS Secrets Manager (sandbox fault injection)"
)


def _injected_pull_error(image: str) -> str:
    return (
        f"CannotPullContainerError: pull image manifest has been retried 5 time(s): failed "
        f"to resolve ref {image}: not found (sandbox fault injection)"
    )


# A container that exits without a result, leaving a few log lines behind.
_EXIT_WITHOUT_RESULT = (
    "import sys\n"
    "print('starting work', flush=True)\n"
    "print('fatal: the worker gave up (sandbox fault injection)', file=sys.stderr, flush=True)\n"
    "sys.exit({code})\n"
)


def _container_override(task: Any, container_name: str) -> dict[str, Any]:
    overrides = task.overrides.get("containerOverrides") or []
    return next((o for o in overrides if o.get("name") == container_name), {})


def _memory_limit_mib(task: Any, definition: dict[str, Any]) -> int | None:
    """The task's hard memory limit: task-level memory (after overrides), else the container's."""
    for value in (task.memory, definition.get("memory")):
        if value:
            try:
                return int(value)
            except (TypeError, ValueError):
                continue
    return None
