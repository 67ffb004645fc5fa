"""The contract between the executor (client side) and the runner (in the container).

Both sides import this module, so the argv shape, the environment variable names and
the result envelope's fields are written down once. The runner image must carry the
same version of this package as the client (see ``RUNNER_VERSION``).
"""

from __future__ import annotations

import sys
from typing import Any

RUNNER_VERSION = "0.2.0"
RUNTIME_MODULE = "covalent_ecs_runtime"

# The container's name inside the task definition, and its entryPoint. RunTask's
# containerOverrides only replace ``command``, so the effective argv is always
# ``python -m covalent_ecs_runtime <command...>``.
CONTAINER_NAME = "covalent-runner"
ENTRY_POINT = ["python", "-m", RUNTIME_MODULE]

# Sent by the client in the container's environment.
ENV_CLIENT_PYTHON = "COVALENT_ECS_CLIENT_PYTHON"  # "3.11": cloudpickle is not portable across minors
ENV_CLIENT_CLOUDPICKLE = "COVALENT_ECS_CLIENT_CLOUDPICKLE"  # payloads need the same cloudpickle
ENV_TASK_LABEL = "COVALENT_ECS_TASK"  # "<dispatch_id>/<node_id>", for log lines only
# The account that must own the staging bucket: ExpectedBucketOwner on every S3 request.
ENV_BUCKET_OWNER = "COVALENT_ECS_BUCKET_OWNER"
# The run's signing key (hex, signing.py). Only ever in the RunTask environment override,
# which only principals allowed to call DescribeTasks can read; the runner removes it
# from its environment before the task's code runs.
ENV_SIGNING_SECRET = "COVALENT_ECS_SIGNING_SECRET"

# The runner's exit codes. 0 means "a result envelope was written", whatever the
# user's function did; anything else means the client gets no envelope.
EXIT_RESULT_WRITTEN = 0
EXIT_USAGE = 2
EXIT_NO_RESULT = 3

# Envelope outcomes.
OUTCOME_RETURNED = "returned"  # ``value`` holds the function's return value
OUTCOME_RAISED = "raised"  # the user's function raised: ``error`` describes it
OUTCOME_RUNNER_ERROR = "runner_error"  # the runner could not run the function: ``error.kind``
# ECS stopped the container (SIGTERM: a Spot interruption, StopTask) while the function
# ran: ``timings`` says for how long, ``stdout``/``stderr`` hold the output so far.
OUTCOME_INTERRUPTED = "interrupted"

# ``error.kind`` values for OUTCOME_RUNNER_ERROR.
KIND_RUNTIME_SKEW = "runtime_skew"
KIND_PAYLOAD_MISSING = "payload_missing"
KIND_PAYLOAD_UNREADABLE = "payload_unreadable"
KIND_PAYLOAD_UNVERIFIED = "payload_unverified"  # its MAC did not verify: never unpickled
KIND_RESULT_UNPICKLABLE = "result_unpicklable"

# 2: payload and result objects carry a MAC in their metadata (runner 0.2.0).
ENVELOPE_FORMAT = 2

# S3 object metadata (x-amz-meta-*) of staged objects. Metadata rather than a header or
# trailer in the object: it costs no extra request, leaves the pickle bytes as they are,
# and arrives with GetObject's response headers, so a reader decides the format and
# knows the MAC to expect before it reads (let alone unpickles) a byte of the body.
META_FORMAT = "covalent-ecs-format"
META_MAC = "covalent-ecs-mac"

# Captured output kept in the envelope per stream; the container's log stream always
# has all of it.
MAX_CAPTURED_BYTES = 8 * 1024 * 1024


def run_command(*, bucket: str, payload_key: str, result_key: str) -> list[str]:
    """The ``command`` override that makes the runner execute one staged task."""
    return ["run", "--bucket", bucket, "--payload-key", payload_key, "--result-key", result_key]


def python_minor() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def runtime_versions() -> dict[str, str]:
    """Versions that must agree between the client and the runner."""
    import cloudpickle

    return {
        "python": python_minor(),
        "cloudpickle": cloudpickle.__version__,
        "runner": RUNNER_VERSION,
    }


def runner_image_tag() -> str:
    """The tag ``covalent-ecs publish-image`` gives the runner image of this version.

    The executor's default ``container_image_uri`` points at it, so a client never runs
    tasks on a runner of another version, Python minor or cloudpickle by accident.
    """
    versions = runtime_versions()
    return f"runner-{versions['runner']}-py{versions['python']}-cloudpickle{versions['cloudpickle']}"


def client_env() -> dict[str, str]:
    """The environment the client sends so the runner can check for skew."""
    versions = runtime_versions()
    return {
        ENV_CLIENT_PYTHON: versions["python"],
        ENV_CLIENT_CLOUDPICKLE: versions["cloudpickle"],
    }


def object_metadata(mac_hex: str) -> dict[str, str]:
    """The metadata of a staged object (payload or result) signed with ``mac_hex``."""
    return {META_FORMAT: str(ENVELOPE_FORMAT), META_MAC: mac_hex}


def new_envelope() -> dict[str, Any]:
    return {
        "format": ENVELOPE_FORMAT,
        "outcome": None,
        "value": None,
        "error": None,
        "stdout": "",
        "stderr": "",
        "stdout_truncated": False,
        "stderr_truncated": False,
        "timings": {},
        "runtime": {},
    }
