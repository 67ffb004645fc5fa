"""``Sandbox``: the local AWS API and the local Fargate agent in this process.

Starting one resets moto's in-process backends, patches moto (moto_patches.py),
starts the HTTP server (server.py) and the agent (agent.py), then seeds the account
(seed.py). With ``aws_limits=True`` the API throttles like AWS (limits.py); faults
for chosen tasks or calls are scripted with ``add_fault`` (faults.py); ``starters``
change how chosen tasks' containers start (starters.py). Stopping it kills every task
process it started, closes the starters, stops both threads and removes its state
directory if it made one. moto's backends are process-global, so
only one Sandbox may run per process at a time (use ``SandboxProcess`` for more).

It listens on a loopback address only: its agent runs the pickles sent to it as
processes of this user, so whoever can reach it can run code here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

from ..config import is_loopback_host
from . import moto_patches
from .agent import AgentSettings, FargateAgent, TaskEventListener
from .calls import CallCounter
from .clients import make_client
from .control import ControlAPI
from .faults import FaultBook
from .limits import AwsLimits
from .seed import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, seed
from .server import (
    ApiServer,
    BucketOwnerPolicy,
    FaultPolicy,
    SandboxMiddleware,
    ThrottlingPolicy,
    s3_bucket_owner,
)
from .starters import ProcessStarter

_running_lock = threading.Lock()


class SandboxError(RuntimeError):
    """The sandbox could not start or is used wrongly."""


class Sandbox:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        state_dir: str | None = None,
        *,
        provision_delay_s: float = 0.2,
        deprovision_delay_s: float = 0.3,
        stop_timeout_s: float = 2.0,
        enforce_memory: bool = True,
        on_task_event: TaskEventListener | None = None,
        aws_limits: bool = False,
        starters: Sequence[ProcessStarter] = (),
        pull_bandwidth_mb_s: float | None = None,
    ) -> None:
        if not is_loopback_host(host):
            raise SandboxError(
                f"the sandbox only listens on a loopback address (127.0.0.1, ::1, localhost), "
                f"not host={host!r}: it runs the pickled tasks sent to it as this user's "
                "processes, so anyone who can reach it could run code on this machine"
            )
        self._host = host
        self._port = port
        self._given_state_dir = state_dir
        self._agent_options = {
            "provision_delay_s": provision_delay_s,
            "deprovision_delay_s": deprovision_delay_s,
            "stop_timeout_s": stop_timeout_s,
            "enforce_memory": enforce_memory,
            "starters": tuple(starters),
            # Emulated image pulls (agent.AgentSettings): off unless given.
            "pull_bandwidth_mb_s": pull_bandwidth_mb_s,
        }
        self._on_task_event = on_task_event
        self._counter = CallCounter()
        self._faults = FaultBook()
        self.aws_limits = aws_limits
        self._limits: AwsLimits | None = None
        self._server: ApiServer | None = None
        self._agent: FargateAgent | None = None
        self._config: dict[str, Any] | None = None
        self._state_dir: str | None = None
        self._owns_slot = False
        self.started_in_s: float | None = None

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> Sandbox:
        if not _running_lock.acquire(blocking=False):
            raise SandboxError(
                "a Sandbox is already running in this process (moto's backends are"
                " process-global); stop it first or use SandboxProcess"
            )
        self._owns_slot = True
        started = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.started_in_s = time.monotonic() - started
        return self

    def _start(self) -> None:
        from moto.moto_api._internal.models import moto_api_backend

        if self._given_state_dir:
            os.makedirs(self._given_state_dir, exist_ok=True)
            self._state_dir = os.path.abspath(self._given_state_dir)
        else:
            self._state_dir = tempfile.mkdtemp(prefix="covalent-ecs-sandbox-")
        work_dir = os.path.join(self._state_dir, "tasks")
        os.makedirs(work_dir, exist_ok=True)

        moto_api_backend.reset()  # a fresh account, whatever ran before in-process
        middleware = SandboxMiddleware(
            control=ControlAPI(self), counter=self._counter, server_host=self._host
        )
        # First: S3 checks the owner before anything else happens to a request.
        middleware.request_policies.append(BucketOwnerPolicy(self._counter, self._host))
        if self.aws_limits:
            self._limits = AwsLimits()
            middleware.request_policies.append(ThrottlingPolicy(self._limits, self._counter))
        middleware.request_policies.append(
            FaultPolicy(self._faults, self._counter, middleware.downstream)
        )
        self._server = ApiServer(middleware, host=self._host, port=self._port)
        self._agent = FargateAgent(
            AgentSettings(
                endpoint_url=self.endpoint_url,
                access_key_id=ACCESS_KEY_ID,
                secret_access_key=SECRET_ACCESS_KEY,
                work_dir=work_dir,
                **self._agent_options,
            ),
            on_event=self._on_task_event,
            faults=self._faults,
        )
        moto_patches.install(self._agent)
        self._server.start()
        self._agent.start()
        self._config = seed(
            lambda service: self.client(service, internal=True),
            state_dir=self._state_dir,
            endpoint_url=self.endpoint_url,
        )

    def stop(self) -> None:
        """Stop the agent (killing task processes) and the server; idempotent."""
        if self._agent is not None:
            self._agent.stop()
            self._agent = None
        moto_patches.uninstall_hooks()
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._state_dir and not self._given_state_dir:
            shutil.rmtree(self._state_dir, ignore_errors=True)
        self._state_dir = None
        if self._owns_slot:
            self._owns_slot = False
            _running_lock.release()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what it offers -------------------------------------------------------------
    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise SandboxError("the sandbox is not running")
        return f"http://{self._server.host}:{self._server.port}"

    @property
    def state_dir(self) -> str:
        if self._state_dir is None:
            raise SandboxError("the sandbox is not running")
        return self._state_dir

    @property
    def executor_config(self) -> dict[str, Any]:
        if self._config is None:
            raise SandboxError("the sandbox is not running (or not seeded yet)")
        return dict(self._config)

    def calls(self) -> dict[str, int]:
        return self._counter.snapshot()

    def calls_by_caller(self) -> dict[str, dict[str, int]]:
        """``{"client": {...}, "runner": {...}, ...}``: who made which calls (calls.caller_of)."""
        return self._counter.snapshot_by_caller()

    def reset_calls(self) -> None:
        self._counter.reset()

    def expected_owners(self) -> dict[str, dict[str, dict[str, int]]]:
        """``{caller: {"s3.PutObject": {account or "none": count}}}``: the
        ExpectedBucketOwner each S3 request carried (calls.CallCounter)."""
        return self._counter.expected_owners()

    def create_foreign_bucket(self, name: str, account: str) -> dict[str, str]:
        """A bucket owned by ``account`` (12 digits), not the sandbox's account: like a
        look-alike bucket, moto lets anyone write to it, but a request carrying the
        sandbox account as ExpectedBucketOwner gets 403 (BucketOwnerPolicy)."""
        from moto.s3.models import s3_backends

        if not (len(account) == 12 and account.isdigit()):
            raise ValueError(f"account={account!r}: give a 12-digit AWS account id")
        if s3_bucket_owner(name) is not None:
            raise ValueError(f"bucket {name!r} exists already")
        s3_backends[account]["aws"].create_bucket(name, REGION)
        return {"bucket": name, "owner": account}

    def tasks(self) -> list[dict[str, Any]]:
        return self._agent.records() if self._agent is not None else []

    def add_fault(self, kind: str, *, label: str | None = None, times: int = 1, **params: Any) -> dict[str, Any]:
        """Script a fault (faults.py) for the next ``times`` tasks/calls matching ``label``."""
        return self._faults.add({"kind": kind, "label": label, "times": times, **params})[0]

    def add_faults(self, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self._faults.add(specs)

    def faults(self) -> list[dict[str, Any]]:
        return self._faults.records()

    def clear_faults(self) -> None:
        self._faults.clear()

    def limits(self) -> dict[str, Any]:
        """AWS's token buckets as the sandbox enforces them ({"enabled": False} if off)."""
        return self._limits.state() if self._limits is not None else {"enabled": False}

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok" if self._config is not None else "starting",
            "endpoint_url": self.endpoint_url,
            "tasks_active": self._agent.running_count() if self._agent is not None else 0,
            "aws_limits": self.aws_limits,
            "pid": os.getpid(),
        }

    def client(self, service: str, *, internal: bool = False) -> Any:
        """A boto3 client for ``service`` pointed at the sandbox (counted unless internal)."""
        return make_client(service, self.endpoint_url, internal=internal)
