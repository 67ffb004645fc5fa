"""The scale mode's container: a thread of one helper process that keeps the runner's
contract, not a process per task.

At N = 1000 a real runner per task (even forked warm) spends more CPU than the
executor and the sandbox together, so on two cores the benchmark would measure the
machine's saturation. ``StandInStarter`` plugs into the sandbox agent's process-start
seam (covalent_ecs_executor/sandbox/starters.py) and, for the tasks a driver marks
with ``STAND_IN_ENV`` (the task's duration in seconds, in the executor's
``environment``), runs each container as a thread of one stand-in host: a helper
process the starter starts once (``python -m stand_in``) and talks to over its stdin
and stdout, one JSON line per message (``TaskProcess.pid`` is None: nothing to measure
or limit). The thread keeps the runner's side of the contract with the runner's own
code: it streams the payload object from S3, waits the task's duration, pickles a
result envelope with the runner's envelope writer and puts it at the result key, then
"exits" 0. Its S3 client carries the runner's User-Agent marker, so the sandbox counts
its calls as the runner's.

The host is a process of its own because on AWS the container is not in the API's
process: run as threads of the sandbox's process, the stand-ins' S3 clients took the
interpreter from the requests the sandbox was answering, and at N = 1000 the API's
latency (what the benchmark measures) depended on how their bursts fell.

It never unpickles the payload: unpickling is running code, and the stand-in stands
for the container, not for the user's function. The real runner stays measured at
N <= 100 and in the cold-start row.

The host writes its process's CPU time to a JSON file, ``STATS_ENV`` in the sandbox's
environment, so bench.py reports it apart from the server's and the agent's CPU.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from typing import Any

import boto3
from botocore.config import Config
from driver_common import STAND_IN_ENV

from covalent_ecs_executor.sandbox.starters import ContainerSpec, TaskProcess, host_argv
from covalent_ecs_runtime import contract, runner, signing

# Set in the sandbox's environment by bench.py: where the stand-ins' totals go.
STATS_ENV = "COVALENT_ECS_BENCH_STAND_IN_STATS"
RUNNER_ARGV = [sys.executable, "-m", contract.RUNTIME_MODULE]
# Live stand-ins share one client per endpoint; more than urllib3's default 10
# connections, so none waits for another's connection.
_MAX_POOL_CONNECTIONS = 64


class Stopped(Exception):
    """The task was signalled (StopTask, OOM kill, Spot) while it waited."""


def exchange(
    s3: Any, command: list[str], env: dict[str, str], workdir: str, wait: Any
) -> dict[str, Any]:
    """The runner's side of the contract (runtime_image/runner.py) for one staged task,
    minus running the function: the one place to adjust when the contract changes.

    ``command`` is the ``run --bucket .. --payload-key .. --result-key ..`` override,
    ``env`` the container's environment (the run's signing key and the bucket's owner);
    ``wait()`` stands for the function (raises ``Stopped``). Returns the envelope written.
    """
    options = dict(zip(command[1::2], command[2::2], strict=False))
    bucket, payload_key, result_key = (options[k] for k in ("--bucket", "--payload-key", "--result-key"))
    if command != contract.run_command(bucket=bucket, payload_key=payload_key, result_key=result_key):
        raise ValueError(f"not the runner's run command: {command}")
    signing_key = signing.SigningKey.from_env_value(env[contract.ENV_SIGNING_SECRET])
    owner = env[contract.ENV_BUCKET_OWNER]
    envelope = contract.new_envelope()
    envelope["timings"]["process_started"] = envelope["timings"]["runner_started"] = time.time()
    envelope["runtime"] = contract.runtime_versions()
    payload_path = os.path.join(workdir, "payload.pkl")
    if not runner._download_payload(s3, bucket, payload_key, payload_path, owner, signing_key):
        raise ValueError(f"the payload s3://{bucket}/{payload_key} does not carry this run's signature")
    envelope["timings"]["payload_fetched"] = time.time()
    envelope["timings"]["function_started"] = time.time()
    wait()
    envelope["timings"]["function_ended"] = time.time()
    envelope["outcome"] = contract.OUTCOME_RETURNED
    envelope["value"] = {"stand_in": True, "payload_bytes": os.path.getsize(payload_path)}
    envelope["timings"]["result_written"] = time.time()
    result_path = os.path.join(workdir, "result.pkl")
    mac_hex = runner._write_envelope(envelope, result_path, signing_key, result_key)
    # The runner's upload_file of a result this small is this one PutObject.
    with open(result_path, "rb") as f:
        s3.put_object(
            Bucket=bucket,
            Key=result_key,
            Body=f,
            ServerSideEncryption="AES256",
            ExpectedBucketOwner=owner,
            Metadata=contract.object_metadata(mac_hex),
        )
    return envelope


class _HostTask:
    """One stand-in container, as a thread of the host."""

    def __init__(self, host: _Host, task_id: str, message: dict[str, Any]) -> None:
        self._host = host
        self._id = task_id
        self._command = message["command"]
        self._env = message["env"]
        self._cwd = message["cwd"]
        self._duration_s = float(message["duration_s"])
        self._signalled = threading.Event()
        self._signal = 0
        self._thread = threading.Thread(target=self._run, name=f"stand-in-{task_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def signal(self, sig: int) -> None:
        if not self._signalled.is_set():
            self._signal = int(sig) or signal.SIGKILL
            self._signalled.set()

    def _wait(self) -> None:
        if self._signalled.wait(self._duration_s):
            raise Stopped

    def _run(self) -> None:
        code, output = contract.EXIT_NO_RESULT, ""
        label = self._env.get(contract.ENV_TASK_LABEL, "?")
        try:
            exchange(self._host.client(self._env), self._command, self._env, self._cwd, self._wait)
            output = f"[stand-in] task {label}: returned after {self._duration_s:g} s\n"
            code = contract.EXIT_RESULT_WRITTEN
        except Stopped:
            code = -self._signal
        except Exception:  # noqa: BLE001 - reported on the task's output, like a crash
            output = f"[stand-in] task {label} failed:\n{traceback.format_exc()}"
        self._host.ended(self._id, code, output)


class _Host:
    """The stand-in host's side: reads ``start``/``signal`` messages from stdin, runs
    each task as a ``_HostTask`` thread, answers ``ended`` on stdout. Stops at EOF."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, ...], Any] = {}
        self._tasks: dict[str, _HostTask] = {}
        self._stats_path = os.environ.get(STATS_ENV)
        self._ended = 0

    def serve(self) -> None:
        for line in sys.stdin:
            message = json.loads(line)
            if message["op"] == "start":
                task = _HostTask(self, message["id"], message)
                with self._lock:
                    self._tasks[message["id"]] = task
                task.start()
            elif message["op"] == "signal":
                with self._lock:
                    found = self._tasks.get(message["id"])
                if found is not None:
                    found.signal(message["signal"])

    def client(self, env: dict[str, str]) -> Any:
        """An S3 client as the runner makes it, shared by tasks with the same account."""
        key = tuple(env.get(n, "") for n in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"))
        with self._lock:  # creating clients from one session is not thread-safe
            if key not in self._clients:
                self._clients[key] = boto3.session.Session().client(
                    "s3",
                    endpoint_url=key[0] or None,
                    aws_access_key_id=key[1] or None,
                    aws_secret_access_key=key[2] or None,
                    region_name=key[3] or None,
                    config=Config(
                        retries={"mode": "standard", "max_attempts": 10},
                        max_pool_connections=_MAX_POOL_CONNECTIONS,
                        user_agent_extra=f"covalent-ecs-runtime/{contract.RUNNER_VERSION} stand-in",
                    ),
                )
            return self._clients[key]

    def ended(self, task_id: str, code: int, output: str) -> None:
        with self._lock:
            self._tasks.pop(task_id, None)
            self._ended += 1
            sys.stdout.write(json.dumps({"op": "ended", "id": task_id, "code": code, "output": output}) + "\n")
            sys.stdout.flush()
            if self._stats_path:
                tmp = f"{self._stats_path}.tmp"
                with open(tmp, "w") as f:
                    json.dump({"tasks": self._ended, "cpu_s": time.process_time()}, f)
                os.replace(tmp, self._stats_path)  # a reader never sees half a file


class StandInTask:
    """One stand-in container as the agent sees it (a ``TaskProcess`` whose pid is None)."""

    pid: int | None = None

    def __init__(self, spec: ContainerSpec, host: StandInStarter, task_id: str) -> None:
        self.argv = host_argv(spec.argv)
        self.env = dict(spec.env)
        self._host = host
        self._id = task_id
        self._ended = threading.Event()
        self._returncode: int | None = None
        # The agent closes its copy of the output descriptor once start() returns.
        self._output_fd = os.dup(spec.output_fd)

    def end(self, code: int, output: str) -> None:
        try:
            with contextlib.suppress(OSError):
                os.write(self._output_fd, output.encode("utf-8", errors="replace"))
        finally:
            os.close(self._output_fd)  # what tells the log pump the output is complete
            self._returncode = code
            self._ended.set()

    def poll(self) -> int | None:
        return self._returncode

    def wait(self) -> int:
        self._ended.wait()
        assert self._returncode is not None
        return self._returncode

    def send_signal(self, sig: int) -> None:
        # Any signal ends it (as SIGTERM/SIGKILL end the runner); none once it has ended.
        if self._returncode is None:
            self._host.send({"op": "signal", "id": self._id, "signal": int(sig)})


class StandInStarter:
    """Starts the marked runner tasks in the stand-in host (see the module doc)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._tasks: dict[str, StandInTask] = {}
        self._count = 0
        with self._lock:  # started now, so no batch's first tasks wait for its imports
            self._start_host()

    def accepts(self, spec: ContainerSpec) -> bool:
        return STAND_IN_ENV in spec.env and host_argv(spec.argv)[:3] == RUNNER_ARGV

    def start(self, spec: ContainerSpec) -> TaskProcess:
        argv = host_argv(spec.argv)
        try:
            duration_s = float(spec.env[STAND_IN_ENV])
        except ValueError as err:
            raise OSError(f"the stand-in cannot run this task: {err!r}") from err
        with self._lock:
            self._count += 1
            task_id = str(self._count)
            task = StandInTask(spec, self, task_id)
            self._tasks[task_id] = task
        try:
            self.send({"op": "start", "id": task_id, "command": argv[3:], "env": task.env,
                       "cwd": spec.cwd, "duration_s": duration_s})  # fmt: skip
        except OSError:
            with self._lock:
                self._tasks.pop(task_id, None)
            task.end(-signal.SIGKILL, "")  # never ran: only its output descriptor to close
            raise
        return task

    def send(self, message: dict[str, Any]) -> None:
        with self._lock:
            if self._process is None or self._process.stdin is None:
                raise OSError("the stand-in host is closed")
            try:
                self._process.stdin.write(json.dumps(message) + "\n")
                self._process.stdin.flush()
            except (OSError, ValueError) as err:
                raise OSError(f"the stand-in host is gone: {err}") from err

    def _start_host(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "stand_in"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        threading.Thread(target=self._read, args=(self._process,), name="stand-in-host", daemon=True).start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            message = json.loads(line)
            with self._lock:
                task = self._tasks.pop(message["id"], None)
            if task is not None:
                task.end(message["code"], message["output"])
        # The host is gone: whatever it still ran ended with it, as a killed container.
        with self._lock:
            orphans, self._tasks = list(self._tasks.values()), {}
        for task in orphans:
            task.end(-signal.SIGKILL, "[stand-in] the stand-in host exited\n")

    def close(self) -> None:
        with self._lock:
            process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None
        with contextlib.suppress(OSError):
            process.stdin.close()  # EOF: the host returns
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def read_stats(path: str) -> dict[str, float]:
    """The stand-ins' totals so far (zeros before the first ended)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"tasks": 0, "cpu_s": 0.0}


if __name__ == "__main__":
    _Host().serve()
