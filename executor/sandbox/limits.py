"""AWS's per-account API rate limits, enforced by the sandbox (``aws_limits=True``).

ECS throttles with token buckets per account and region (docs/facts.md, "AWS limits and
throttles";
https://docs.aws.amazon.com/AmazonECS/latest/APIReference/request-throttling.html):

    RunTask, StopTask              burst 100, refill 40/s
    Describe*, List*               burst 100, refill 20/s
    RegisterTaskDefinition         burst  20, refill  1/s
    Fargate task launches          burst 100, refill 20/s (RunTask's ``count`` tasks)

A refused call is answered as ECS does: HTTP 400 ``ThrottlingException`` "Rate
exceeded", and every ``DISGUISED_EVERY``-th refusal as ``ClientException`` "Rate
exceeded" (ECS's throttling in disguise). It is counted as ``throttled.<name>``
on top of its plain name. Off by default: the sandbox's everyday job is speed.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .calls import peek_body


@dataclass(frozen=True)
class BucketSpec:
    burst: float
    refill_per_s: float


RUN_STOP = BucketSpec(burst=100, refill_per_s=40)
DESCRIBE_LIST = BucketSpec(burst=100, refill_per_s=20)
REGISTER_TASK_DEFINITION = BucketSpec(burst=20, refill_per_s=1)
FARGATE_LAUNCHES = BucketSpec(burst=100, refill_per_s=20)
DISGUISED_EVERY = 4


class TokenBucket:
    def __init__(self, spec: BucketSpec, clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self._clock = clock
        self._tokens = float(spec.burst)
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.spec.burst, self._tokens + (now - self._updated) * self.spec.refill_per_s)
        self._updated = now

    def available(self) -> float:
        self._refill()
        return self._tokens

    def take(self, count: float = 1) -> bool:
        self._refill()
        if self._tokens < count:
            return False
        self._tokens -= count
        return True


class AwsLimits:
    """Decides, per ECS request, whether AWS would have throttled it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self.buckets = {
            "RunTask/StopTask": TokenBucket(RUN_STOP, clock),
            "Describe*/List*": TokenBucket(DESCRIBE_LIST, clock),
            "RegisterTaskDefinition": TokenBucket(REGISTER_TASK_DEFINITION, clock),
            "FargateLaunches": TokenBucket(FARGATE_LAUNCHES, clock),
        }
        self.refused = 0

    def _api_bucket(self, operation: str) -> TokenBucket | None:
        if operation in ("RunTask", "StopTask"):
            return self.buckets["RunTask/StopTask"]
        if operation.startswith(("Describe", "List")):
            return self.buckets["Describe*/List*"]
        if operation == "RegisterTaskDefinition":
            return self.buckets["RegisterTaskDefinition"]
        return None

    def refusal(self, name: str, environ: dict[str, Any]) -> str | None:
        """None to let ``name`` ("ecs.RunTask") through, else the error code to answer."""
        service, _, operation = name.partition(".")
        if service != "ecs":
            return None
        bucket = self._api_bucket(operation)
        if bucket is None:
            return None
        launches = _run_task_count(environ) if operation == "RunTask" else 0
        with self._lock:
            launch_bucket = self.buckets["FargateLaunches"]
            allowed = bucket.available() >= 1 and launch_bucket.available() >= launches
            if allowed:
                bucket.take(1)
                if launches:
                    launch_bucket.take(launches)
                return None
            self.refused += 1
            return "ClientException" if self.refused % DISGUISED_EVERY == 0 else "ThrottlingException"

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "enabled": True,
                "refused": self.refused,
                "buckets": {
                    name: {
                        "burst": b.spec.burst,
                        "refill_per_s": b.spec.refill_per_s,
                        "available": round(b.available(), 2),
                    }
                    for name, b in self.buckets.items()
                },
            }


def _run_task_count(environ: dict[str, Any]) -> int:
    body = peek_body(environ, limit=1024 * 1024)
    try:
        return max(1, int(json.loads(body or b"{}").get("count", 1)))
    except (ValueError, TypeError, AttributeError):
        return 1
