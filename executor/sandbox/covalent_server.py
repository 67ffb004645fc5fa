"""A real Covalent server for the demo and end-to-end tests, isolated and on 127.0.0.1.

``covalent start`` runs the server as a background process that reads covalent.conf
from ``COVALENT_CONFIG_DIR``. The client side of a test or demo (``ct.dispatch``) reads
the same file, so the server is started with the *current process's* Covalent
directories: the process sets them (``ISOLATION_LAYOUT``) before ``import covalent``;
this module cannot do it for them, since importing it imports covalent (see __init__).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# The variables that keep Covalent's state out of $HOME, and the Dask switch: a server
# started with --no-cluster must default un-annotated electrons and the lattice's
# post-processing to the "local" executor. They must be set in the environment of
# the process before it imports covalent (importing it writes to these folders), plus
# COVALENT_DATABASE and COVALENT_DISABLE_DASK=1.
ISOLATION_LAYOUT = {
    "COVALENT_CONFIG_DIR": "config",
    "COVALENT_DATA_DIR": "data",
    "COVALENT_CACHE_DIR": "cache",
    "COVALENT_LOGDIR": "logs",
    "XDG_CACHE_HOME": "xdg-cache",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CovalentServer:
    """Start and stop ``covalent start --no-cluster`` with this process's Covalent dirs."""

    def __init__(
        self,
        *,
        executor_config: Mapping[str, Any] | None = None,
        port: int = 0,
        ready_timeout_s: float = 60,
    ) -> None:
        missing = [name for name in ISOLATION_LAYOUT if not os.environ.get(name)]
        if missing or os.environ.get("COVALENT_DISABLE_DASK") != "1":
            raise RuntimeError(
                f"set {', '.join(missing) or 'COVALENT_DISABLE_DASK=1'} in the environment "
                "before importing covalent (see ISOLATION_LAYOUT), so the server neither uses "
                "~/.config/covalent nor expects a Dask cluster"
            )
        self.executor_config = dict(executor_config or {})
        self.port = port or free_port()
        self.ready_timeout_s = ready_timeout_s
        self.url = f"http://127.0.0.1:{self.port}"
        self._covalent = str(Path(sys.executable).with_name("covalent"))

    def __enter__(self) -> CovalentServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        from covalent._shared_files.config import set_config

        for name in ISOLATION_LAYOUT:
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
        result = subprocess.run(
            [self._covalent, "start", "--no-cluster", "--no-triggers", "-p", str(self.port)],
            capture_output=True,
            text=True,
            timeout=self.ready_timeout_s,
        )
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

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/dispatches/list", timeout=2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        subprocess.run([self._covalent, "stop"], capture_output=True, timeout=60, check=False)
        from covalent._shared_files.config import get_config

        pid_file = Path(get_config("dispatcher.cache_dir")) / "ui.pid"
        if pid_file.exists():  # `covalent stop` failed: stop what we started ourselves
            with contextlib.suppress(ValueError, ProcessLookupError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)

    def log_tail(self, lines: int = 60) -> str:
        from covalent._shared_files.config import get_config

        log = Path(get_config("user_interface.log_dir")) / "covalent_ui.log"
        if not log.is_file():
            return "(no server log)"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
