"""A thousand tasks launched at once against AWS's rate limits: zero throttling failures.

Starts a sandbox with ``aws_limits=True`` (ECS's per-account token buckets,
docs/facts.md "AWS limits and throttles"), then launches N tasks at once the way
ECSExecutor does — the process-wide launch pacer, RunTask with a clientToken through
our clients (botocore adaptive retries, disguised throttling relabelled), one batched
poller for all — and waits for every task's container to exit. Each task runs ``sleep`` so the machine can hold a thousand.

    .venv/bin/python benchmarks/launch_burst.py [--tasks 1000] [--sleep 5] [--no-pacer]

Prints the time taken, how many tasks failed, the ECS calls made and how many of
them the sandbox refused (``throttled.*``). Figures, not assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

from covalent_ecs_executor import aws, events, launch, poller, threads
from covalent_ecs_executor.config import build_config
from covalent_ecs_executor.sandbox import SandboxProcess


def _definition(sandbox: Any, sleep_s: float) -> str:
    ecs = sandbox.client("ecs", internal=True)
    return ecs.register_task_definition(
        family=f"launch-burst-{uuid.uuid4().hex[:6]}",
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
        containerDefinitions=[
            {"name": "covalent-ecs-runner", "image": "python:3.11-slim", "command": ["sleep", str(sleep_s)]}
        ],
    )["taskDefinition"]["taskDefinitionArn"]


async def _burst(sandbox: Any, tasks: int, sleep_s: float, pacer: launch.LaunchPacer) -> dict[str, Any]:
    config = build_config(sandbox.executor_config, {})
    clients = aws.clients_for(config)
    in_thread = threads.control

    definition = await in_thread(_definition, sandbox, sleep_s)
    watcher = poller.poller_for(clients, in_thread)
    launched_at: list[float] = []
    paced_s: list[float] = []
    cycles: list[dict[str, Any]] = []

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == events.POLL_CYCLE:
            cycles.append(event)

    async def one(n: int) -> None:
        before = time.monotonic()
        await pacer.acquire(1)
        paced_s.append(time.monotonic() - before)
        request = {
            "cluster": config.ecs_cluster_name,
            "taskDefinition": definition,
            "launchType": "FARGATE",
            "count": 1,
            "networkConfiguration": {
                "awsvpcConfiguration": {
                    "subnets": [config.ecs_task_subnet_id],
                    "securityGroups": [config.ecs_task_security_group_id],
                }
            },
            "clientToken": launch.client_token("burst", n, uuid.uuid4().hex),
        }
        task = await in_thread(launch.run_task, clients.ecs, request)
        launched_at.append(time.monotonic())
        await watcher.watch(config.ecs_cluster_name, task["taskArn"], interval_s=config.poll_freq)

    sandbox.reset_calls()
    events.subscribe(on_event)
    started = time.monotonic()
    outcomes = await asyncio.gather(*(one(n) for n in range(tasks)), return_exceptions=True)
    elapsed = time.monotonic() - started
    events.unsubscribe(on_event)
    threads.shutdown()
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    return {
        "tasks": tasks,
        "elapsed_s": round(elapsed, 1),
        "all_launched_after_s": round(max(launched_at) - started, 1) if launched_at else None,
        "failed": len(failures),
        "first_failure": repr(failures[0]) if failures else None,
        "describe_cycles": len(cycles),
        "pacer_wait_total_s": round(sum(paced_s), 1),
        "calls": {k: v for k, v in sandbox.calls().items() if k.startswith(("ecs.", "throttled."))},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--sleep", type=float, default=5.0, help="seconds each task runs")
    parser.add_argument("--no-pacer", action="store_true", help="botocore retries alone")
    args = parser.parse_args()
    pacer = launch.LaunchPacer(burst=10**9, rate_per_s=10**9) if args.no_pacer else launch.LaunchPacer()
    with SandboxProcess(aws_limits=True, startup_timeout_s=120) as sandbox:
        report = asyncio.run(_burst(sandbox, args.tasks, args.sleep, pacer))
    for key, value in report.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
