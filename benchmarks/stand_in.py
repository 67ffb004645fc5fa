"""The scale mode's container: a thread that keeps the runner's contract, not a process.

At N = 1000 a real runner per task (even forked warm) spends more CPU than the
executor and the sandbox together, so on two cores the benchmark would measure the
machine's saturation. ``StandInStarter`` plugs into the sandbox agent's process-start
seam (covalent_ecs_executor/sandbox/starters.py) and, for the tasks a driver marks
with ``STAND_IN_ENV`` (the task's duration in seconds, in the executor's
``environment``), runs each container as a thread of the sandbox's process
(``TaskProcess.pid`` is None: nothing to measure or limit). The thread keeps the
runner's side of the contract with the runner's own code: it streams the payload
object from S3, waits the task's duration, pickles a result envelope with the runner's
envelope writer and puts it at the result key, then "exits" 0. Its S3 client carries
the runner's User-Agent marker, so the sandbox counts its calls as the runner's.

It never unpickles the payload: unpickling is running code, and the stand-in stands
for the container, not for the user's function. The real runner stays measured at
N <= 100 and in the cold-start row.

What a stand-in costs the sandbox's process (its threads' CPU time) is summed into a
JSON file, ``STATS_ENV`` in the sandbox's environment, so bench.py can tell it apart
from the server's and the agent's CPU.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
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


class StandInTask:
    """One stand-in container: a thread (a ``TaskProcess`` whose pid is None)."""

    pid: int | None = None

    def __init__(self, spec: ContainerSpec, s3: Any, on_end: Any) -> None:
        self.argv = host_argv(spec.argv)
        self.env = dict(spec.env)
        self._spec = spec
        self._s3 = s3
        self._on_end = on_end
        self._duration_s = float(spec.env[STAND_IN_ENV])
        self._signalled = threading.Event()
        self._signal = 0
        self._returncode: int | None = None
        # The agent closes its copy of the output descriptor once start() returns.
        self._output_fd = os.dup(spec.output_fd)
        self._thread = threading.Thread(
            target=self._run, name=f"stand-in-{spec.task_arn.rsplit('/', 1)[-1][:8]}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def _wait(self) -> None:
        if self._signalled.wait(self._duration_s):
            raise Stopped

    def _say(self, text: str) -> None:
        with contextlib.suppress(OSError):
            os.write(self._output_fd, text.encode("utf-8", errors="replace"))

    def _run(self) -> None:
        started_cpu = time.thread_time()
        code = contract.EXIT_NO_RESULT
        label = self.env.get(contract.ENV_TASK_LABEL, "?")
        try:
            exchange(self._s3, self.argv[3:], self.env, self._spec.cwd, self._wait)
            self._say(f"[stand-in] task {label}: returned after {self._duration_s:g} s\n")
            code = contract.EXIT_RESULT_WRITTEN
        except Stopped:
            code = -self._signal
        except Exception:  # noqa: BLE001 - reported on the task's output, like a crash
            self._say(f"[stand-in] task {label} failed:\n{traceback.format_exc()}")
        finally:
            os.close(self._output_fd)  # what tells the log pump the output is complete
            self._on_end(time.thread_time() - started_cpu)
            self._returncode = code

    def poll(self) -> int | None:
        return self._returncode

    def wait(self) -> int:
        self._thread.join()
        assert self._returncode is not None
        return self._returncode

    def send_signal(self, sig: int) -> None:
        # Any signal ends it (as SIGTERM/SIGKILL end the runner); none once it has ended.
        if self._returncode is None and not self._signalled.is_set():
            self._signal = int(sig) or signal.SIGKILL
            self._signalled.set()


class StandInStarter:
    """Starts the marked runner tasks as ``StandInTask`` threads (see the module doc)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, ...], Any] = {}
        self._stats_path = os.environ.get(STATS_ENV)
        self._stats = {"tasks": 0, "cpu_s": 0.0}

    def accepts(self, spec: ContainerSpec) -> bool:
        return STAND_IN_ENV in spec.env and host_argv(spec.argv)[:3] == RUNNER_ARGV

    def start(self, spec: ContainerSpec) -> TaskProcess:
        try:
            task = StandInTask(spec, self._client(spec.env), self._ended)
        except (KeyError, ValueError) as err:
            raise OSError(f"the stand-in cannot run this task: {err!r}") from err
        task.start()
        return task

    def _client(self, env: dict[str, str]) -> Any:
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

    def _ended(self, cpu_s: float) -> None:
        with self._lock:
            self._stats["tasks"] += 1
            self._stats["cpu_s"] += cpu_s
            if self._stats_path:
                tmp = f"{self._stats_path}.tmp"
                with open(tmp, "w") as f:
                    json.dump(self._stats, f)
                os.replace(tmp, self._stats_path)  # a reader never sees half a file

    def close(self) -> None:
        pass  # the agent has stopped every task; their threads are daemons


def read_stats(path: str) -> dict[str, float]:
    """The stand-ins' totals so far (zeros before the first ended)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"tasks": 0, "cpu_s": 0.0}
