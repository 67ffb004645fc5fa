"""Drive the original covalent-ecs-plugin's ECSExecutor against a sandbox: JSON out.

Run by bench.py with the Python of benchmarks/.venv-original (covalent-ecs-plugin
0.32.0, boto3 1.24.35, covalent 0.220; see setup_original.sh). Same options and output
as drive_ours.py. The plugin's boto3 is pointed at the sandbox by
original/boto_endpoint.py; its settings are the sandbox's resources and its own
defaults (poll_freq 10 s, 0.25 vCPU, 0.5 GB), as a user would configure it.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import time

import driver_common

_HOME = driver_common.isolate_home()
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "original"))
ARGS = driver_common.parser("drive_original.py").parse_args()
# Imported in this order on purpose: boto3 patched before the plugin makes a client,
# covalent before the plugin (circular-import trap), all after isolate_home().
importlib.import_module("boto_endpoint").install(ARGS.endpoint_url, "original-client")
cloudpickle = importlib.import_module("cloudpickle")
importlib.import_module("covalent")
workload = importlib.import_module("workload")
ECSExecutor = importlib.import_module("covalent_ecs_plugin.ecs").ECSExecutor
cloudpickle.register_pickle_by_value(workload)


def make_executor(config: dict, *, vcpu: float = 0.25, memory: float = 0.5):
    # The original reads credentials from AWS_SHARED_CREDENTIALS_FILE (it sets it).
    return ECSExecutor(
        credentials=config["credentials"],
        profile=config["profile"],
        region=config["region"],
        s3_bucket_name=config["s3_bucket_name"],
        ecs_cluster_name=config["ecs_cluster_name"],
        ecs_task_execution_role_name=config["ecs_task_execution_role_name"],
        ecs_task_role_name=config["ecs_task_role_name"],
        ecs_task_subnet_id=config["ecs_task_subnet_id"],
        ecs_task_security_group_id=config["ecs_task_security_group_id"],
        ecs_task_log_group_name=config["ecs_task_log_group_name"],
        vcpu=vcpu,
        memory=memory,
        poll_freq=10,
        cache_dir=os.path.join(_HOME, "cache"),
    )


async def main() -> None:
    args = ARGS
    config = driver_common.control(args.endpoint_url, "config")
    document: dict = {"plugin": "original", "n": args.n}
    if args.payload_bytes:
        executor = make_executor(config, vcpu=2, memory=8)  # room for the payload twice
        meta = {"dispatch_id": args.dispatch_id, "node_id": 0, "results_dir": _HOME}
        document.update(
            await driver_common.measure_payload(
                args, lambda fn, fn_args: executor.run(fn, fn_args, {}, meta), workload
            )
        )
        driver_common.emit(document)
        return

    async def run_one(i: int):
        # One executor per task, as Covalent builds one per electron: the plugin keeps
        # the task's family name on the object, so a shared one would mix tasks up.
        executor = make_executor(config)
        meta = {"dispatch_id": args.dispatch_id, "node_id": i, "results_dir": _HOME}
        seconds = driver_common.task_seconds(i, args.sleep)
        return await executor.run(workload.sleep_then_return, [i, seconds], {}, meta)

    cpu_before = driver_common.cpu_s()
    started = time.time()
    document["tasks"] = await driver_common.run_batch(args.n, run_one, timeout_s=args.timeout)
    document["wall_s"] = time.time() - started
    document["batch_cpu_s"] = round(driver_common.cpu_s() - cpu_before, 3)
    document["idle"] = await driver_common.idle_calls(args.endpoint_url, args.idle)
    driver_common.emit(document)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
