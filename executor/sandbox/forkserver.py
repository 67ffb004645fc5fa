"""A pre-warmed fork server that starts the runner's task processes quickly.

A fresh ``python -m covalent_ecs_runtime`` spends most of its start importing boto3,
botocore and cloudpickle (~0.3-0.5 s of CPU here): at hundreds of tasks on two cores
the sandbox would be measuring Python's import time, not the executor. With
``Sandbox(fork_server=True)`` the agent starts one server process (this module's
``main``) that imports those modules once; each runner task is then a ``fork()`` of it.

Each task is still its own process, in its own session (process group = pid, so the
agent's StopTask and OOM kills reach it), with the task's argv, environment and working
directory, stdin from /dev/null and stdout/stderr on the pipe the agent gave it. What
differs from a real container start: modules are already imported (so ``PYTHONPATH`` or
other interpreter options in the task's environment are not applied), and the process
is a child of the fork server, which reports its exit status to the agent.

Only argv of the form ``<this python> -m covalent_ecs_runtime ...`` is forked; anything
else is started with ``subprocess.Popen`` as before.

Protocol (Unix socket, one connection per task): the agent sends one JSON line
``{"argv", "env", "cwd"}`` with the output file descriptor attached (SCM_RIGHTS); the
server answers ``{"pid": N}`` and, when the process ends, ``{"status": S}`` (a raw
``waitpid`` status), then closes the connection.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

RUNNER_MODULE = "covalent_ecs_runtime"
# Imported once in the server so that forked tasks start warm.
PRELOADED_MODULES = (
    "boto3",
    "botocore.session",
    "botocore.client",
    "botocore.config",
    "botocore.exceptions",
    "s3transfer.manager",
    "cloudpickle",
    "covalent_ecs_runtime.runner",
    "covalent_ecs_runtime.contract",
)
_STARTUP_TIMEOUT_S = 30.0
_MAX_MESSAGE_BYTES = 1024 * 1024


def forkable(argv: list[str]) -> bool:
    """True when ``argv`` runs the runner with this interpreter (what the server preloads)."""
    return len(argv) >= 3 and argv[0] == sys.executable and argv[1:3] == ["-m", RUNNER_MODULE]


# ----------------------------------------------------------------------- agent side
class ForkedProcess:
    """The agent's handle on one forked task: the parts of ``Popen`` the agent uses."""

    def __init__(self, conn: socket.socket, pid: int) -> None:
        self._conn = conn
        self.pid = pid
        self.returncode: int | None = None
        self._buffer = b""

    def _read_status(self, *, block: bool) -> None:
        self._conn.setblocking(block)
        try:
            while b"\n" not in self._buffer:
                chunk = self._conn.recv(4096)
                if not chunk:  # the server is gone: the process was killed with it
                    self._finish(-signal.SIGKILL)
                    return
                self._buffer += chunk
        except BlockingIOError:
            return
        message = json.loads(self._buffer.split(b"\n", 1)[0])
        self._finish(_returncode(int(message["status"])))

    def _finish(self, returncode: int) -> None:
        self.returncode = returncode
        self._conn.close()

    def poll(self) -> int | None:
        if self.returncode is None:
            self._read_status(block=False)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self._read_status(block=True)
        assert self.returncode is not None
        return self.returncode


def _returncode(status: int) -> int:
    """``Popen.returncode`` for a waitpid status: -N for death by signal N."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


class ForkServer:
    """Starts the server process on first use; ``spawn`` forks one task from it."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: str | None = None
        self._socket_path: str | None = None

    def _ensure_started(self) -> str:
        if self._process is not None and self._process.poll() is None:
            assert self._socket_path is not None
            return self._socket_path
        self._dir = tempfile.mkdtemp(prefix="covalent-ecs-forkserver-")
        self._socket_path = os.path.join(self._dir, "socket")
        ready = os.path.join(self._dir, "ready")
        self._process = subprocess.Popen(
            # Run as a script, not ``-m``: importing this package would import covalent
            # and moto into the server, and every task would carry them.
            [sys.executable, os.path.abspath(__file__), self._socket_path, ready],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        while not os.path.exists(ready):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise OSError("the sandbox's runner fork server did not start")
            time.sleep(0.02)
        return self._socket_path

    def spawn(self, argv: list[str], *, env: dict[str, str], cwd: str, output_fd: int) -> ForkedProcess:
        """Start one task; raises OSError when the server cannot."""
        path = self._ensure_started()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(path)
            request = json.dumps({"argv": argv, "env": env, "cwd": cwd}).encode() + b"\n"
            conn.sendmsg(
                [request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [output_fd]))]
            )
            reply = b""
            while b"\n" not in reply:
                chunk = conn.recv(4096)
                if not chunk:
                    raise OSError("the fork server closed the connection")
                reply += chunk
            head, _, rest = reply.partition(b"\n")
            message = json.loads(head)
            if "error" in message:
                raise OSError(message["error"])
        except BaseException:
            conn.close()
            raise
        process = ForkedProcess(conn, int(message["pid"]))
        process._buffer = rest
        return process

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if self._dir is not None:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self._dir, "socket"))
                os.unlink(os.path.join(self._dir, "ready"))
                os.rmdir(self._dir)
            self._dir = None


# ---------------------------------------------------------------------- server side
def _run_task(request: dict[str, Any], output_fd: int) -> None:
    """In the forked child: become the task's process and run the runner; never returns."""
    code = 1
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        os.closerange(3, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 1024)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        from covalent_ecs_runtime import runner

        # The runner stamps its start at import, which happened in the server: stamp
        # this process's start instead (the fork is the container's process start).
        runner._PROCESS_STARTED = time.time()
        sys.argv = [RUNNER_MODULE, *request["argv"][3:]]
        code = runner.main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - reported on the task's output, like a crash
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _preload() -> None:
    for name in PRELOADED_MODULES:
        __import__(name)
    import boto3

    # Parse S3's service model and the endpoint rules once: the runner's
    # ``boto3.client("s3")`` then reuses them. Nothing account-specific is resolved here
    # (credentials, region and endpoint are read from each task's environment when it
    # creates its client).
    boto3.setup_default_session()
    session = boto3.DEFAULT_SESSION._session  # type: ignore[union-attr]
    session.get_service_model("s3")
    session.get_component("endpoint_resolver")
    loader = session.get_component("data_loader")
    loader.load_service_model("s3", "endpoint-rule-set-1")
    loader.load_data("partitions")
    loader.load_data("sdk-default-configuration")


def serve(socket_path: str, ready_path: str) -> None:
    _preload()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(128)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    os.set_blocking(wake_read, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(wake_read, selectors.EVENT_READ, "child")
    children: dict[int, socket.socket] = {}
    with open(ready_path, "w") as f:
        f.write(str(os.getpid()))
    while True:
        for key, _ in selector.select(timeout=1.0):
            if key.data == "accept":
                conn, _ = listener.accept()
                _start_one(conn, children)
            else:
                with contextlib.suppress(BlockingIOError):
                    while os.read(wake_read, 4096):
                        pass
        _reap(children)


def _start_one(conn: socket.socket, children: dict[int, socket.socket]) -> None:
    try:
        data, fds, _, _ = socket.recv_fds(conn, _MAX_MESSAGE_BYTES, 1)
        while not data.endswith(b"\n"):
            more = conn.recv(_MAX_MESSAGE_BYTES)
            if not more:
                raise OSError("truncated request")
            data += more
        request = json.loads(data)
        if len(fds) != 1:
            raise OSError("no output file descriptor was sent")
        pid = os.fork()
        if pid == 0:
            _run_task(request, fds[0])
        os.close(fds[0])
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        children[pid] = conn
    except Exception as exc:  # noqa: BLE001 - answered to the agent, which fails the task
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps({"error": f"fork server: {exc!r}"}).encode() + b"\n")
        conn.close()


def _reap(children: dict[int, socket.socket]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps({"status": status}).encode() + b"\n")
            conn.close()


if __name__ == "__main__":
    # As a script, this file's folder is sys.path[0]; its siblings must not shadow
    # top-level modules (e.g. ``calls``, ``server``) in the tasks.
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        sys.path.pop(0)
    serve(sys.argv[1], sys.argv[2])
