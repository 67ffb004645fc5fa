"""A sandbox in a child process, and a client for any running sandbox.

``SandboxProcess`` starts ``python -m covalent_ecs_executor.sandbox`` with a ready
file, waits (bounded) until the child has written it, and gives a ``SandboxClient``:
the same surface as ``Sandbox`` (endpoint_url, executor_config, calls, reset_calls,
tasks, client) over the control API, so a test session, a Covalent server and
benchmarks can share one sandbox over HTTP. On exit it sends SIGTERM (the child stops
its task processes) and SIGKILL if the child does not end in time. Process starters
(starters.py) cross the process boundary as ``MODULE:ATTR`` paths the child imports
(``--starter``): put their folder on the child's ``PYTHONPATH`` through ``env``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from .clients import make_client
from .control import CONTROL_PREFIX
from .sandbox import SandboxError

_STDERR_TAIL_BYTES = 8000


class SandboxClient:
    """Talks to a running sandbox's control API at ``endpoint_url``."""

    def __init__(self, endpoint_url: str, *, timeout_s: float = 10.0) -> None:
        self.endpoint_url = endpoint_url.rstrip("/")
        self._timeout_s = timeout_s
        self._config: dict[str, Any] | None = None

    def _request(self, method: str, name: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            f"{self.endpoint_url}{CONTROL_PREFIX}{name}",
            method=method,
            data=(json.dumps(body).encode() if body is not None else b"") if method == "POST" else None,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            if err.code == 400:  # e.g. a fault the sandbox does not understand
                raise ValueError(json.loads(err.read()).get("error", str(err))) from err
            raise

    @property
    def executor_config(self) -> dict[str, Any]:
        if self._config is None:
            self._config = self._request("GET", "config")
        return dict(self._config)

    def health(self) -> dict[str, Any]:
        return self._request("GET", "health")

    def calls(self) -> dict[str, int]:
        return self._request("GET", "calls")

    def calls_by_caller(self) -> dict[str, dict[str, int]]:
        return self._request("GET", "calls/by-caller")

    def reset_calls(self) -> None:
        self._request("POST", "calls/reset")

    def expected_owners(self) -> dict[str, dict[str, dict[str, int]]]:
        """The ExpectedBucketOwner each S3 request carried, per caller (Sandbox.expected_owners)."""
        return self._request("GET", "calls/expected-owners")

    def create_foreign_bucket(self, name: str, account: str) -> dict[str, str]:
        """A bucket owned by another account (Sandbox.create_foreign_bucket)."""
        return self._request("POST", "buckets/foreign", {"name": name, "account": account})

    def tasks(self) -> list[dict[str, Any]]:
        return self._request("GET", "tasks")

    def add_fault(self, kind: str, *, label: str | None = None, times: int = 1, **params: Any) -> dict[str, Any]:
        """Script a fault (see faults.py) for the next ``times`` tasks/calls matching ``label``."""
        return self.add_faults([{"kind": kind, "label": label, "times": times, **params}])[0]

    def add_faults(self, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self._request("POST", "faults", specs)

    def faults(self) -> list[dict[str, Any]]:
        return self._request("GET", "faults")

    def clear_faults(self) -> None:
        self._request("POST", "faults/clear")

    def limits(self) -> dict[str, Any]:
        return self._request("GET", "limits")

    def client(self, service: str, *, internal: bool = False) -> Any:
        """A boto3 client for ``service`` pointed at the sandbox (counted unless internal)."""
        return make_client(service, self.endpoint_url, internal=internal)


class SandboxProcess:
    """Context manager: a sandbox in a child process; ``with`` yields a SandboxClient."""

    def __init__(
        self,
        *,
        port: int = 0,
        state_dir: str | None = None,
        provision_delay_s: float | None = None,
        deprovision_delay_s: float | None = None,
        startup_timeout_s: float = 60.0,
        stop_timeout_s: float = 15.0,
        python: str = sys.executable,
        env: dict[str, str] | None = None,
        aws_limits: bool = False,
        starters: Sequence[str] = (),
        pull_bandwidth_mb_s: float | None = None,
    ) -> None:
        self._port = port
        self._pull_bandwidth_mb_s = pull_bandwidth_mb_s
        self._aws_limits = aws_limits
        self._given_state_dir = state_dir
        self._delays = (provision_delay_s, deprovision_delay_s)
        self._startup_timeout_s = startup_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._python = python
        self._env = env
        self._starters = list(starters)
        self._process: subprocess.Popen[bytes] | None = None
        self._state_dir: str | None = None
        self.client: SandboxClient | None = None
        self.ready: dict[str, Any] = {}

    def start(self) -> SandboxClient:
        self._state_dir = self._given_state_dir or tempfile.mkdtemp(prefix="covalent-ecs-sandbox-")
        os.makedirs(self._state_dir, exist_ok=True)
        ready_file = os.path.join(self._state_dir, "ready.json")
        if os.path.exists(ready_file):
            os.remove(ready_file)
        argv = [
            self._python, "-m", "covalent_ecs_executor.sandbox",
            "--port", str(self._port),
            "--state-dir", os.path.join(self._state_dir, "sandbox"),
            "--ready-file", ready_file,
        ]  # fmt: skip
        provision, deprovision = self._delays
        if provision is not None:
            argv += ["--provision-delay", str(provision)]
        if deprovision is not None:
            argv += ["--deprovision-delay", str(deprovision)]
        if self._aws_limits:
            argv.append("--aws-limits")
        if self._pull_bandwidth_mb_s:
            argv += ["--pull-bandwidth", str(self._pull_bandwidth_mb_s)]
        for starter in self._starters:
            argv += ["--starter", starter]
        env = dict(os.environ if self._env is None else self._env)
        # The package imports covalent, which writes its config/db under $HOME unless
        # told otherwise: keep the child's inside the state dir.
        for name, sub in (
            ("COVALENT_CONFIG_DIR", "covalent/config"),
            ("COVALENT_DATA_DIR", "covalent/data"),
            ("COVALENT_CACHE_DIR", "covalent/cache"),
        ):
            env.setdefault(name, os.path.join(self._state_dir, sub))
        self._stdout_path = os.path.join(self._state_dir, "sandbox.out")
        self._stderr_path = os.path.join(self._state_dir, "sandbox.err")
        with open(self._stdout_path, "wb") as out, open(self._stderr_path, "wb") as err:
            self._process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env
            )
        deadline = time.monotonic() + self._startup_timeout_s
        while not os.path.exists(ready_file):
            if self._process.poll() is not None:
                self._fail(f"the sandbox process exited with code {self._process.returncode}")
            if time.monotonic() > deadline:
                self._fail(f"the sandbox was not ready after {self._startup_timeout_s:.0f} s")
            time.sleep(0.05)
        with open(ready_file) as f:
            self.ready = json.load(f)
        self.client = SandboxClient(self.ready["endpoint_url"])
        return self.client

    def _fail(self, what: str) -> None:
        stderr = self.stderr_tail()
        self.stop()
        raise SandboxError(f"{what}; its stderr ends with:\n{stderr}")

    def stderr_tail(self) -> str:
        try:
            with open(self._stderr_path, "rb") as f:
                f.seek(max(os.path.getsize(self._stderr_path) - _STDERR_TAIL_BYTES, 0))
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=self._stop_timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._state_dir and not self._given_state_dir:
            shutil.rmtree(self._state_dir, ignore_errors=True)
        self._state_dir = None

    def __enter__(self) -> SandboxClient:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_sandbox_process(**kwargs: Any) -> SandboxProcess:
    """``with start_sandbox_process() as sandbox:`` -> a SandboxClient (see SandboxProcess)."""
    return SandboxProcess(**kwargs)
