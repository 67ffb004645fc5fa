"""The Covalent adapter: ``ECSExecutor`` runs one electron as one ECS Fargate task.

``run()`` reads as its steps, each a short method backed by its own module:

1. stage    (staging.py)   cloudpickle ``(function, args, kwargs)`` and upload it to S3,
            signed with this run's key (signing.py), into a bucket of this account
            only, shortly before the run's launch slot (launch.py's schedule)
2. define   (taskdefs.py)  find or register the one task definition for this config
3. launch   (launch.py, livetasks.py)  RunTask with command, env and size as overrides;
            from here to the end of ``run()`` the task is guarded: if ``run()`` ends
            before the container exited, the task is stopped with a reason
4. watch    (poller.py)    one batched DescribeTasks loop for every live task
5. collect  (staging.py, failures.py)  download the result envelope and verify its MAC
            before loading it, or explain the failure
6. clean up (staging.py)   delete the staged objects (a failure is only a warning)

Covalent builds this object on its server as ``ECSExecutor(**[executors.ecs])`` and then
overwrites ``__dict__`` with the client object's attributes, so every attribute is
plain JSON (config values only); clients, pollers and caches live in module registries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any

from covalent._shared_files.exceptions import TaskCancelledError, TaskRuntimeError
from covalent.executor.base import AsyncBaseExecutor

from covalent_ecs_runtime import contract, signing

from . import (
    aws,
    events,
    failures,
    launch,
    livetasks,
    poller,
    pricing,
    records,
    staging,
    taskdefs,
    tasklogs,
    threads,
    timeline,
)
from .config import CONFIG_KEYS, COVALENT_BASE_KEYS, ExecutorConfig, build_config, plugin_defaults
from .errors import (
    ConfigError,
    ECSExecutorError,
    IntegrityError,
    StagingError,
    StartTimeoutError,
    TaskDefinitionInactiveError,
    TaskStoppedError,
    TaskTimeoutError,
)
from .image.refs import default_runner_image
from .setup.conffile import read_executor_section

EXECUTOR_PLUGIN_NAME = "ECSExecutor"
_EXECUTOR_PLUGIN_DEFAULTS = plugin_defaults()

# get_cancel_requested() is a round trip to the server's database: ask at most this
# often per task while it runs (Covalent's own cancel() stops a task at once when it
# has the job handle; this catches a cancel that raced the handle).
CANCEL_CHECK_INTERVAL_S = 2.0
# After a container exited without a result: how long to wait for the task to reach
# STOPPED (and ECS's full reason) before explaining the failure with what is known.
STOPPED_WAIT_S = 120.0
# After a StopTask: how long cleanup waits for the container to exit (ECS sends SIGTERM,
# then SIGKILL after the container's stopTimeout, 30 s by default).
CONTAINER_STOP_WAIT_S = 45.0
# What a task stuck before its container started is usually waiting for.
_STUCK_HINTS = {
    "PROVISIONING": "Fargate was still finding capacity or attaching the network interface "
    "(try another subnet / zone). ",
    "PENDING": "The image pull or the task's network set-up had not finished (a large "
    "image, or no route from the subnet to ECR). ",
}

# A payload is staged this long before its launch slot (launch.py's schedule): time for
# a small payload's PutObject even on a loaded link, while 1000 runs called at once
# upload at the launch rate rather than all at the start (_stage_before_launch).
STAGE_LEAD_S = 2.0

# Relaunch backoff: full jitter over an exponential step (2 s, 4 s, ...), capped.
RELAUNCH_BACKOFF_S = 2.0
RELAUNCH_BACKOFF_MAX_S = 30.0

_task_definitions = taskdefs.TaskDefinitionCache()


def _relaunch_delay_s(failed_attempt: int) -> float:
    step = min(RELAUNCH_BACKOFF_MAX_S, RELAUNCH_BACKOFF_S * 2 ** (failed_attempt - 1))
    return random.uniform(step / 2, step)


def _first_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__
_in_thread = threads.control


def _config_from_file() -> dict[str, Any]:
    return read_executor_section(None) or {}


@dataclass(frozen=True)
class _Run:
    """One launch attempt of a ``run()``: its config, connection, staging keys and the
    key that signs its payload and results (never shown by repr, see signing.py).

    Attempts share the run's payload and key; each has its own result key (which its
    result's MAC covers) and clientToken.
    """

    config: ExecutorConfig
    clients: aws.Clients
    dispatch_id: str
    node_id: Any
    token: str
    bucket: staging.Bucket
    keys: staging.TaskKeys
    signing_key: signing.SigningKey
    number: int = 1
    # What the run's attempts showed (timings, described tasks); shared by its attempts.
    seen: timeline.RunSeen = field(default_factory=timeline.RunSeen)
    # Result keys written but not read (the download failed): kept, never deleted.
    unread: set[str] = field(default_factory=set)
    # Every task the run's attempts started.
    launched: list[livetasks.LiveTask] = field(default_factory=list)
    # Event-loop time of the launch slot reserved for this attempt before its payload
    # was staged (``_stage_before_launch``); None: launched as soon as the pacer lets it.
    launch_at: float | None = None

    @property
    def attempt(self) -> str:
        return f"{self.token}-{self.number}"

    def next_attempt(self, *, on_demand: bool) -> _Run:
        config = self.config
        if on_demand:
            config = config.model_copy(
                update={"capacity_provider": "FARGATE", "spot_fallback": False}
            )
        return replace(
            self,
            config=config,
            number=self.number + 1,
            keys=self.keys.for_attempt(self.number + 1),
            launch_at=None,
        )

    @property
    def cluster(self) -> str:
        return self.config.ecs_cluster_name

    @property
    def label(self) -> str:
        return f"dispatch {self.dispatch_id}, node {self.node_id}"

    @property
    def payload_uri(self) -> str:
        return self.bucket.uri(self.keys.payload)

    @property
    def result_uri(self) -> str:
        return self.bucket.uri(self.keys.result)


class ECSExecutor(AsyncBaseExecutor):
    """Run electrons as AWS ECS Fargate tasks on one reusable runner image.

    Every argument defaults to the ``[executors.ecs]`` block of covalent.conf; see the
    README's configuration reference. Invalid values raise ``ConfigError`` here, before
    any AWS call.
    """

    def __init__(
        self,
        credentials: str | None = None,
        profile: str | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        s3_bucket_name: str | None = None,
        ecr_repo_name: str | None = None,
        container_image_uri: str | None = None,
        ecs_cluster_name: str | None = None,
        ecs_task_family_name: str | None = None,
        ecs_task_execution_role_name: str | None = None,
        ecs_task_role_name: str | None = None,
        ecs_task_subnet_id: str | list[str] | None = None,
        ecs_task_security_group_id: str | list[str] | None = None,
        assign_public_ip: bool | None = None,
        ecs_task_log_group_name: str | None = None,
        capacity_provider: str | None = None,
        spot_fallback: bool | None = None,
        rerun_on_interruption: bool | None = None,
        launch_attempts: int | None = None,
        cpu_architecture: str | None = None,
        vcpu: float | None = None,
        memory: float | None = None,
        ephemeral_storage: int | None = None,
        environment: dict[str, str] | None = None,
        secrets: dict[str, str] | None = None,
        time_limit: float | None = None,
        start_timeout: float | None = None,
        cache_dir: str | None = None,
        poll_freq: float | None = None,
        retry_mode: str | None = None,
        max_attempts: int | None = None,
        price_table: str | None = None,
        **kwargs: Any,
    ) -> None:
        given = {
            key: value
            for key, value in locals().items()
            if key in CONFIG_KEYS and value is not None
        }
        base = {key: kwargs.pop(key) for key in list(kwargs) if key in COVALENT_BASE_KEYS}
        given.update(kwargs)  # unknown keys: build_config names them ("did you mean")
        config = build_config(given, _config_from_file())
        super().__init__(
            log_stdout=base.get("log_stdout", ""),
            log_stderr=base.get("log_stderr", ""),
            cache_dir=config.cache_dir,
            time_limit=config.time_limit,
            retries=base.get("retries", 0),
        )
        for key, value in config.model_dump(mode="json").items():
            setattr(self, key, value)

    # ------------------------------------------------------------------ configuration
    def config(self) -> ExecutorConfig:
        """The validated configuration held in this object's (JSON) attributes."""
        return build_config({key: getattr(self, key) for key in CONFIG_KEYS}, {})

    def __repr__(self) -> str:
        # What a task would get; never credentials, profile or endpoint (a repr ends up
        # in logs and Covalent's UI).
        shown = ("vcpu", "memory", "ecs_cluster_name", "region", "capacity_provider")
        values = ", ".join(f"{key}={getattr(self, key, None)!r}" for key in shown)
        return f"{type(self).__name__}({values})"

    # ---------------------------------------------------------------------- Covalent
    async def run(
        self, function: Any, args: list[Any], kwargs: dict[str, Any], task_metadata: dict[str, Any]
    ) -> Any:
        dispatch_id = str(task_metadata["dispatch_id"])
        node_id = task_metadata["node_id"]
        seen = timeline.RunSeen()
        try:
            config = self.config()
            config.require_launch_settings()
            return await self._run(config, function, args, kwargs, dispatch_id, node_id, seen)
        except TaskCancelledError:
            raise
        except ECSExecutorError as err:
            message = f"[{type(err).__name__}] {err}"
            attempts = getattr(err, "attempts", [])
            if attempts:
                message += "\nLaunch attempts:\n" + "\n".join(f"  {a}" for a in attempts)
            stop_failure = getattr(err, "stop_failure", "")
            if stop_failure:
                message += f"\n{stop_failure}"
            print(message, file=self.task_stderr)
            raise TaskRuntimeError(message) from err
        finally:
            # Where the time and money went, one line per attempt: last on the node's stderr.
            for line in seen.summary_lines():
                print(line, file=self.task_stderr)

    async def cancel(self, task_metadata: dict[str, Any], job_handle: Any) -> bool:
        """Stop the task behind ``job_handle`` (set by ``run``); True when ECS accepted."""
        handle = json.loads(job_handle) if isinstance(job_handle, str) else job_handle
        if not isinstance(handle, dict) or "task_arn" not in handle:
            return False
        config = self.config()
        await _in_thread(
            livetasks.stop,
            aws.clients_for(config),
            handle.get("cluster", config.ecs_cluster_name),
            handle["task_arn"],
            f"{livetasks.CANCEL_REASON} (dispatch {task_metadata.get('dispatch_id')}, "
            f"node {task_metadata.get('node_id')})",
        )
        return True

    # ---------------------------------------------------------------------- the steps
    async def _run(
        self,
        config: ExecutorConfig,
        function: Any,
        args: list[Any],
        kwargs: dict[str, Any],
        dispatch_id: str,
        node_id: Any,
        seen: timeline.RunSeen,
    ) -> Any:
        token = secrets.token_hex(12)
        clients = await _in_thread(aws.clients_for, config)
        # The staging bucket must be this account's: the first S3 request (the payload
        # upload) already names it, so a foreign bucket gets nothing. One STS call per
        # process (cached).
        account_id = await _in_thread(getattr, clients, "account_id")
        first = _Run(
            config=config,
            clients=clients,
            dispatch_id=dispatch_id,
            node_id=node_id,
            token=token,
            bucket=staging.Bucket(name=config.s3_bucket_name, owner=account_id),
            keys=staging.task_keys(dispatch_id, node_id, token),
            # One per run(): the payload is signed once; each launch attempt writes its
            # own result key, and a MAC covers the key it was written for.
            signing_key=signing.SigningKey.new(),
            seen=seen,
        )
        first = await self._stage_before_launch(first, (function, args, kwargs))
        run, history = first, []
        try:
            while True:
                try:
                    return await self._attempt(run)
                except ECSExecutorError as err:
                    run = await self._relaunch_or_raise(err, run, history)
        except asyncio.CancelledError:
            raise  # shutting down: clean up at once, don't wait for stopping containers
        except BaseException:
            await self._wait_for_stopped_containers(first)
            raise
        finally:
            await asyncio.gather(
                self._clean_up(first, attempts=run.number), self._write_record(first)
            )

    async def _wait_for_stopped_containers(self, run: _Run) -> None:
        """Before the staging objects are deleted: wait (at most CONTAINER_STOP_WAIT_S)
        for the containers of tasks we stopped to exit, so that a result a stopping
        runner still writes is deleted too rather than left behind."""
        stopped = [task for task in run.launched if task.stopped and not task.exited]
        if not stopped:
            return
        watcher = poller.poller_for(run.clients, _in_thread)
        waits = [
            watcher.watch(task.cluster, task.task_arn, interval_s=run.config.poll_freq)
            for task in stopped
        ]
        with contextlib.suppress(asyncio.TimeoutError, ECSExecutorError):
            await asyncio.wait_for(asyncio.gather(*waits), CONTAINER_STOP_WAIT_S)

    async def _attempt(self, run: _Run) -> Any:
        """One launch: RunTask, watch, collect. The task is guarded until it exited."""
        seen = run.seen.begin(run.number, capacity_provider=run.config.capacity_provider)
        error: BaseException | None = None
        try:
            image_uri, task = await self._launch(run)
            run.launched.append(task)
            seen.task_arn = task.task_arn
            async with livetasks.guard(task, run_in_thread=_in_thread, label=run.label):
                await self._set_job_handle({"task_arn": task.task_arn, "cluster": run.cluster})
                watcher = poller.poller_for(run.clients, _in_thread)
                described = await self._watch(run, watcher, task.task_arn)
                task.exited = True
                exit_seen = seen.exit_seen = time.time()
            envelope, described = await self._collect(run, watcher, described, image_uri)
            events.emit(
                events.TASK_FINISHED, dispatch_id=run.dispatch_id, node_id=run.node_id,
                task_arn=task.task_arn, timings=dict(envelope.get("timings") or {}),
                exit_seen=exit_seen,
            )  # fmt: skip
            return self._unpack(envelope, payload_uri=run.payload_uri, task=described)
        except BaseException as exc:
            error = exc
            raise
        finally:
            run.seen.ended(error)

    async def _relaunch_or_raise(self, err: ECSExecutorError, run: _Run, history: list[str]) -> _Run:
        """The next attempt when ``err`` proves the code never ran for a cause that may
        pass (or is a Spot interruption, when opted in) and attempts remain; else raise
        ``err``, listing the earlier attempts. Each relaunch is said on the node's stderr."""
        config = run.config
        reason = failures.relaunch_reason(err, rerun_on_interruption=config.rerun_on_interruption)
        if reason is None or run.number >= config.launch_attempts:
            if history:
                err.attempts = [*history, f"attempt {run.number}: {_first_line(err)}"]  # type: ignore[attr-defined]
            raise err
        on_demand = (
            config.capacity_provider == "FARGATE_SPOT"
            and config.spot_fallback
            and failures.lacks_capacity(err)
        )
        delay_s = _relaunch_delay_s(run.number)
        history.append(f"attempt {run.number}: {reason}")
        print(
            f"[covalent-ecs] launch attempt {run.number} of {config.launch_attempts} did not "
            f"run the task ({reason}); relaunching{' on on-demand FARGATE' if on_demand else ''} "
            f"in {delay_s:.1f} s",
            file=self.task_stderr,
        )
        await asyncio.sleep(delay_s)
        return run.next_attempt(on_demand=on_demand)

    async def _stage_before_launch(self, run: _Run, payload: Any) -> _Run:
        """Reserve the first attempt's launch slot, then stage the payload STAGE_LEAD_S
        before it. 1000 runs called at once launch over 45 s (Fargate's 20 a second
        after a burst of 100): staged all at once, their uploads held the client and S3
        for the first seconds, and the results of the first tasks to finish waited
        behind them. Staged as their slots come, uploads follow the launch rate."""
        loop = asyncio.get_running_loop()
        launch_at = loop.time() + launch.launch_schedule.reserve()  # one task per RunTask
        await asyncio.sleep(max(0.0, launch_at - STAGE_LEAD_S - loop.time()))
        run = replace(run, launch_at=launch_at)
        await self._stage(run, payload)
        return run

    async def _stage(self, run: _Run, payload: Any) -> None:
        started = time.monotonic()
        await threads.upload(
            staging.upload_payload,
            run.clients.s3,
            run.bucket,
            run.keys.payload,
            payload,
            run.config.cache_dir,
            run.signing_key,
        )
        run.seen.upload_s = time.monotonic() - started

    async def _launch(self, run: _Run) -> tuple[str, livetasks.LiveTask]:
        """Define and RunTask; returns the runner image and the started (live) task.

        A definition deregistered since we looked it up (ECS: "TaskDefinition is
        inactive") is forgotten, registered again, and the launch retried once.
        """
        livetasks.install_sigterm_handler()
        image_uri, definition = await self._define(run)
        for retried in (False, True):
            definition_arn = await _task_definitions.arn(run.clients, definition, _in_thread)
            # A retry takes a slot of its own: the reserved one was used.
            launch_at = None if retried else run.launch_at
            request = await self._launch_request(run, definition_arn, launch_at=launch_at)
            try:
                return image_uri, await _in_thread(livetasks.start, run.clients, request)
            except TaskDefinitionInactiveError:
                if retried:
                    raise
                _task_definitions.forget(run.clients, definition["family"])
        raise AssertionError("unreachable")  # pragma: no cover

    async def _define(self, run: _Run) -> tuple[str, dict[str, Any]]:
        """The runner image and the (shared) task definition that runs it."""
        image_uri = await _in_thread(self._image_uri, run.config, run.clients)
        # By digest: a later push to the tag does not change what this process runs.
        image_uri = await _task_definitions.pinned_image(run.clients, image_uri, _in_thread)
        definition = await _in_thread(self._task_definition, run.config, run.clients, image_uri)
        return image_uri, definition

    async def _launch_request(
        self, run: _Run, definition_arn: str, *, launch_at: float | None
    ) -> dict[str, Any]:
        """The RunTask request, once it may go: not before ``launch_at`` (the slot its
        payload was staged for), and only when the launch pacer lets it (Fargate's
        launch bucket counts the launches actually sent, late ones included)."""
        request = launch.build_run_task_request(
            run.config,
            task_definition_arn=definition_arn,
            bucket=run.bucket,
            keys=run.keys,
            dispatch_id=run.dispatch_id,
            node_id=run.node_id,
            attempt=run.attempt,
            signing_key=run.signing_key,
        )
        if launch_at is not None:
            await asyncio.sleep(max(0.0, launch_at - asyncio.get_running_loop().time()))
        await launch.launch_pacer.acquire(request["count"])
        if await self._cancel_requested():
            raise TaskCancelledError(
                f"cancelled before launch: no ECS task was started for node {run.node_id}"
            )
        return request

    def _image_uri(self, config: ExecutorConfig, clients: aws.Clients) -> str:
        if config.container_image_uri:
            return config.container_image_uri
        return default_runner_image(clients.ecr_registry(), config.ecr_repo_name)

    def _task_definition(
        self, config: ExecutorConfig, clients: aws.Clients, image_uri: str
    ) -> dict[str, Any]:
        return taskdefs.build_task_definition(
            config,
            image_uri=image_uri,
            execution_role_arn=clients.role_arn(config.ecs_task_execution_role_name),
            task_role_arn=clients.role_arn(config.ecs_task_role_name),
            region=clients.region,
        )

    async def _set_job_handle(self, handle: dict[str, str]) -> None:
        # Outside a Covalent server (direct calls, tests) there is no listener to tell.
        if getattr(self, "_send_queue", None) is not None:
            await self.set_job_handle(handle)

    async def _cancel_requested(self) -> bool:
        # Outside a Covalent server (direct calls, tests) nobody can ask to cancel.
        if getattr(self, "_send_queue", None) is None:
            return False
        return bool(await self.get_cancel_requested())

    async def _watch(self, run: _Run, watcher: poller.TaskPoller, task_arn: str) -> dict[str, Any]:
        """The task once its container exited. Raises (and the guard stops the task)
        past ``start_timeout`` before the container started, past ``time_limit`` after
        it started, or on a cancel."""
        loop = asyncio.get_running_loop()
        watch = asyncio.ensure_future(
            watcher.watch(run.cluster, task_arn, interval_s=run.config.poll_freq)
        )
        start_s, limit_s = run.config.start_timeout_s, run.config.time_limit_s
        start_deadline = None if start_s is None else loop.time() + start_s
        deadline: float | None = None  # set when the container is seen running
        try:
            while True:
                latest = watcher.latest(task_arn) or {}
                started = poller.container_started(latest)
                if started and deadline is None and limit_s is not None:
                    deadline = loop.time() + limit_s
                wait_s = CANCEL_CHECK_INTERVAL_S
                for limit in (deadline, None if started else start_deadline):
                    if limit is not None:
                        wait_s = max(0.0, min(wait_s, limit - loop.time()))
                done, _ = await asyncio.wait({watch}, timeout=wait_s)
                if done:
                    run.seen.saw(watch.result())
                    return watch.result()
                if not started and start_deadline is not None and loop.time() >= start_deadline:
                    phase = latest.get("lastStatus") or "PROVISIONING"
                    raise livetasks.with_stop_reason(
                        StartTimeoutError(
                            f"ECS task {task_arn} was still {phase} after start_timeout="
                            f"{start_s:g} s and was stopped: its container never started. "
                            f"{_STUCK_HINTS.get(phase, '')}Raise start_timeout, or -1 for "
                            "no limit.",
                            phase=phase,
                        ),
                        f"{livetasks.START_TIMEOUT_REASON} ({start_s:g} s in {phase})",
                    )
                if deadline is not None and loop.time() >= deadline:
                    raise livetasks.with_stop_reason(
                        TaskTimeoutError(
                            f"time limit exceeded: ECS task {task_arn} ran longer than "
                            f"time_limit={limit_s:g} s and was stopped. Raise time_limit or "
                            "set it to -1 for no limit."
                        ),
                        f"{livetasks.TIME_LIMIT_REASON} ({limit_s:g} s)",
                    )
                if await self._cancel_requested():
                    raise livetasks.with_stop_reason(
                        TaskCancelledError(f"cancelled: ECS task {task_arn} was stopped"),
                        f"{livetasks.CANCEL_REASON} ({run.label})",
                    )
        finally:
            run.seen.saw(watcher.latest(task_arn))  # however the watch ends (timeline.py)
            if not watch.done():
                watch.cancel()  # the poller stops watching this task

    async def _collect(
        self, run: _Run, watcher: poller.TaskPoller, described: dict[str, Any], image_uri: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The result envelope (and the task as last described), verified before it was loaded (staging.download_result
        raises IntegrityError otherwise); when the task wrote none, raise why it stopped."""
        started = time.monotonic()
        try:
            envelope = await threads.collect(
                staging.download_result, run.clients.s3, run.bucket, run.keys.result,
                run.config.cache_dir, run.signing_key,
            )  # fmt: skip
        except IntegrityError:
            raise  # not the task's result: nothing worth keeping
        except StagingError:
            run.unread.add(run.keys.result)  # a finished result is never deleted unread
            raise
        if envelope is None:
            raise await self._explain_stop(run, watcher, described, image_uri)
        if envelope.get("outcome") == contract.OUTCOME_INTERRUPTED and not described.get(
            "stopCode"
        ):
            # Who stopped it (Spot, a user) is in the stop code, set by ECS when it stops.
            described = await self._stopped(run, watcher, described)
        seen = run.seen.current
        if seen is not None:
            seen.download_s = time.monotonic() - started
            seen.result_downloaded = time.time()
            seen.runner_timings = dict(envelope.get("timings") or {})
        return envelope, described

    async def _stopped(
        self, run: _Run, watcher: poller.TaskPoller, described: dict[str, Any]
    ) -> dict[str, Any]:
        """The task once STOPPED (ECS's full stop code and reason), within STOPPED_WAIT_S;
        as last described when that bound passes."""
        if described.get("lastStatus") == "STOPPED":
            return described
        with contextlib.suppress(asyncio.TimeoutError):
            return await asyncio.wait_for(
                watcher.watch(
                    run.cluster,
                    described["taskArn"],
                    until=poller.STOPPED,
                    interval_s=run.config.poll_freq,
                ),
                STOPPED_WAIT_S,
            )
        return described

    async def _explain_stop(
        self,
        run: _Run,
        watcher: poller.TaskPoller,
        described: dict[str, Any],
        image_uri: str,
    ) -> TaskStoppedError | TaskCancelledError:
        """No result: wait for STOPPED (for ECS's full reason) and classify it."""
        # ECS gives its full stop code and reason only once the task is STOPPED (after
        # the network interface is detached).
        described = await self._stopped(run, watcher, described)
        run.seen.saw(described)
        if (described.get("stoppedReason") or "").startswith(livetasks.CANCEL_REASON):
            return TaskCancelledError(described["stoppedReason"])
        tail = await _in_thread(
            tasklogs.log_tail,
            run.clients.logs,
            run.config.ecs_task_log_group_name,
            taskdefs.log_stream_name(described["taskArn"]),
        )
        memory_mib = int(described.get("memory") or run.config.memory_mib)
        return failures.classify_stopped_task(
            described,
            log_tail=tail,
            image_uri=image_uri,
            memory_mib=memory_mib,
            result_uri=run.result_uri,
        )

    # ------------------------------------------ where the time and money went
    async def _write_record(self, run: _Run) -> None:
        """Build each attempt's timeline (``run.seen.timelines``, for the summary lines)
        and write the run's durable record: one PutObject. A failure is only a warning."""
        seen, config = run.seen, run.config
        if not seen.attempts:
            return
        try:
            prices = pricing.load_price_table(config.price_table)
        except ValueError as err:  # the file changed since the config was validated
            print(f"[covalent-ecs] warning: price_table: {err}; using the shipped prices",
                  file=sys.stderr)
            prices = pricing.load_price_table()
        size = timeline.TaskSize(
            vcpu=config.vcpu,
            memory_gb=config.memory,
            capacity_provider=config.capacity_provider,
            architecture=config.cpu_architecture,
        )
        seen.timelines = [
            timeline.build_timeline(attempt, size=size, region=run.clients.region, prices=prices)
            for attempt in seen.attempts
        ]
        record = records.build_record(
            dispatch_id=run.dispatch_id,
            node_id=run.node_id,
            cluster=run.cluster,
            region=run.clients.region,
            log_group=config.ecs_task_log_group_name,
            prices={"taken": prices.taken, "source": prices.source, "table": config.price_table},
            upload_s=seen.upload_s,
            attempts=seen.timelines,
        )
        key = records.record_key(run.dispatch_id, run.node_id, run.token)
        try:
            await threads.collect(
                records.put_record, run.clients.s3, run.bucket.name, key, record,
                expected_owner=run.bucket.owner,
            )  # fmt: skip
        except ECSExecutorError as err:
            print(f"[covalent-ecs] warning: the task record was not written: {err}", file=sys.stderr)

    def _unpack(
        self, envelope: dict[str, Any], *, payload_uri: str, task: dict[str, Any]
    ) -> Any:
        """Copy the task's output to the node's streams; return the value or raise."""
        for text, stream, truncated in (
            (envelope.get("stdout", ""), self.task_stdout, envelope.get("stdout_truncated")),
            (envelope.get("stderr", ""), self.task_stderr, envelope.get("stderr_truncated")),
        ):
            if text:
                print(text, end="", file=stream)
            if truncated:
                print(
                    f"\n[covalent-ecs] output truncated at {contract.MAX_CAPTURED_BYTES} bytes; "
                    "the task's CloudWatch log stream has all of it",
                    file=stream,
                )
        error = failures.envelope_error(envelope, payload_uri=payload_uri, task=task)
        if error is not None:
            raise error
        return envelope["value"]

    async def _clean_up(self, run: _Run, *, attempts: int) -> None:
        try:
            await threads.collect(
                staging.delete_task_objects, run.clients.s3, run.bucket, run.keys,
                attempts=attempts, keep=run.unread,
            )  # fmt: skip
        except ECSExecutorError as err:
            # The task's own outcome matters more than its leftovers; say so, don't fail.
            print(f"[covalent-ecs] warning: {err}", file=self.task_stderr or sys.stderr)


__all__ = ["ECSExecutor", "EXECUTOR_PLUGIN_NAME", "ConfigError"]
