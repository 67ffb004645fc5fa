"""A real Covalent server for the demo and end-to-end tests, isolated and on 127.0.0.1.

``covalent start`` runs the server as a background process that reads covalent.conf
from ``COVALENT_CONFIG_DIR``. The client side of a test or demo (``ct.dispatch``) reads
the same file, so the server is started with the *current process's* Covalent
directories: the process sets them (``covalent_env``) before ``import covalent``, or
moves an imported covalent there (``covalent_moved_to``, what the pytest plugin does);
this module cannot do it for them, since importing it imports covalent (see __init__).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from covalent_ecs_pytest.isolation import COVALENT_DIRS, NO_DASK

# A dispatch's final states: ct.get_result(wait=True) polls for them with no ceiling
# (covalent 0.240 retries "for sys.maxsize"); ``CovalentServer.result`` has one.
FINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "POSTPROCESSING_FAILED"})
# The CLI through this interpreter, not a `covalent` script beside it: with a
# `pip install --user` the script is in ~/.local/bin, not next to sys.executable.
COVALENT_CLI = (sys.executable, "-m", "covalent_dispatcher._cli.cli")


# `covalent stop` waits for the server with no ceiling; a server still there after this
# (on a loaded 2-core machine its shutdown takes seconds) is killed, with its children.
STOP_TIMEOUT_S = 60.0
KILL_WAIT_S = 10.0


def _kill_tree(pid: int) -> None:
    """SIGKILL a Covalent server still running (pid from its pid file) and its children."""
    import psutil  # a dependency of covalent

    try:
        server = psutil.Process(pid)
        if not any("covalent" in part for part in server.cmdline()):
            return  # the pid was reused by another program: not ours to kill
        processes = [*server.children(recursive=True), server]
    except psutil.Error:
        return
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(processes, timeout=KILL_WAIT_S)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CovalentServer:
    """Start and stop ``covalent start --no-cluster`` with this process's Covalent dirs.

    ``env`` is the environment of the server's processes (default: this process's);
    its Covalent directories must be this process's, since both read one covalent.conf.
    """

    def __init__(
        self,
        *,
        executor_config: Mapping[str, Any] | None = None,
        port: int = 0,
        ready_timeout_s: float = 60,
        env: Mapping[str, str] | None = None,
    ) -> None:
        required = {**{name: None for name in COVALENT_DIRS}, **NO_DASK}
        missing = [
            f"{name}={value}" if value else name
            for name, value in required.items()
            if not os.environ.get(name) or (value and os.environ[name] != value)
        ]
        if missing:
            raise RuntimeError(
                f"set {', '.join(missing)} in the environment before importing covalent "
                "(covalent_ecs_pytest.isolation), so the server neither uses "
                "~/.config/covalent nor expects a Dask cluster"
            )
        self.executor_config = dict(executor_config or {})
        self.port = port or free_port()
        self.ready_timeout_s = ready_timeout_s
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = dict(os.environ if env is None else env)

    def __enter__(self) -> CovalentServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _cli(self, *args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*COVALENT_CLI, *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=self._env,
            stdin=subprocess.DEVNULL,
        )

    def start(self) -> None:
        from covalent._shared_files.config import set_config, update_config

        for name in COVALENT_DIRS:
            Path(os.environ[name]).mkdir(parents=True, exist_ok=True)
        # Bind to loopback only (Covalent binds to dispatcher.address).
        set_config(
            {
                "dispatcher.address": "127.0.0.1",
                "dispatcher.port": self.port,
                "user_interface.address": "127.0.0.1",
                "user_interface.port": self.port,
            }
        )
        if self.executor_config:
            set_config("executors.ecs", self.executor_config)
        started = time.monotonic()
        result = self._cli(
            "start", "--no-cluster", "--no-triggers", "-p", str(self.port),
            timeout_s=self.ready_timeout_s,
        )  # fmt: skip
        if result.returncode != 0 or "unable to start" in result.stdout:
            raise RuntimeError(
                f"covalent start failed:\n{result.stdout}\n{result.stderr}\n{self.log_tail()}"
            )
        while not self._ready():
            if time.monotonic() - started > self.ready_timeout_s:
                self.stop()
                raise RuntimeError(
                    f"Covalent server not ready on {self.url} after "
                    f"{self.ready_timeout_s:.0f} s\n{self.log_tail()}"
                )
            time.sleep(0.2)
        # The server added each installed plugin's [executors.*] defaults to the file
        # (in its environment); take them in, as `covalent start` itself does.
        update_config()

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/dispatches/list", timeout=2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        """``covalent stop``; if it fails or outlasts STOP_TIMEOUT_S (it SIGTERMs the server
        and waits with no ceiling), the server and its children are killed: bounded."""
        pid = self._server_pid()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._cli("stop", timeout_s=STOP_TIMEOUT_S)
        if pid is not None:
            _kill_tree(pid)

    def _server_pid(self) -> int | None:
        from covalent._shared_files.config import get_config

        pid_file = Path(get_config("dispatcher.cache_dir")) / "ui.pid"
        try:
            return int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def result(self, dispatch_id: str, *, timeout_s: float = 240.0, poll_interval_s: float = 0.25) -> Any:
        """The dispatch's result once it reached a final state (``FINAL_STATUSES``).

        Raises TimeoutError after ``timeout_s`` with the end of the server's log."""
        import covalent as ct

        deadline = time.monotonic() + timeout_s
        while True:
            status = str(ct.get_result(dispatch_id, status_only=True)["status"])
            if status in FINAL_STATUSES:
                return ct.get_result(dispatch_id, wait=False)
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"dispatch {dispatch_id} still {status} after {timeout_s:.0f} s; "
                    f"the server's log ends with:\n{self.log_tail()}"
                )
            time.sleep(poll_interval_s)  # each poll is a request to the server

    def log_tail(self, lines: int = 60) -> str:
        from covalent._shared_files.config import get_config

        log = Path(get_config("user_interface.log_dir")) / "covalent_ui.log"
        if not log.is_file():
            return "(no server log)"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
