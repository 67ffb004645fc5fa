"""Runner start in the published image: "container start → function start", cold.

Publishes the runner image on the real Debian bookworm + Python 3.11 base (the one the
publish tests build with debootstrap, cached in ~/.cache/covalent-ecs-tests), copies it
out of a loopback registry (skopeo) and unpacks it (umoci), then runs N Covalent-shaped
tasks one after another through the executor and the sandbox, whose agent runs each in
a chroot of the unpacked image (``ImageRootStarter``): every task is a new interpreter,
so every start is cold (the page cache is warm after the first, as on a host that
already pulled the image; Fargate's is warm too once the pull has written the layers).

Per task, from its durable record (records.py): container start (ECS ``startedAt``, set
by the agent when it starts the process) → ``function_started`` (the runner's mark just
before it calls the function), split as the timeline splits it: interpreter start,
imports, payload download + MAC check, unpickling (imports what the function needs,
e.g. covalent). Prints p50/p95 of each. Needs root (debootstrap, umoci, chroot).

    make bench-runner-start            # N=12
    benchmarks/runner_start.py --n 20 --bundle DIR   # reuse an unpacked image
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The publish tests' helpers build the Debian base and run the loopback registry
# (they import tests/waiting.py).
sys.path.insert(0, str(HERE.parent / "tests"))

PARTS = ("interpreter_s", "imports_s", "payload_s", "unpickle_s")


def square_plus_one(x: int) -> int:
    return x * x + 1


def build_bundle(work: Path) -> tuple[str, Path]:
    """Publish on the Debian base, copy out and unpack: (reference, bundle directory)."""
    import importlib.util

    path = HERE.parent / "tests/integration/publish/conftest.py"
    spec = importlib.util.spec_from_file_location("publish_support", path)
    assert spec is not None and spec.loader is not None
    publish_support = importlib.util.module_from_spec(spec)
    sys.modules["publish_support"] = publish_support  # dataclasses look their module up
    spec.loader.exec_module(publish_support)

    os.environ["COVALENT_ECS_PUBLISH_CACHE"] = str(work / "publish-cache")
    os.environ["PIP_CACHE_DIR"] = str(publish_support.CACHE_DIR / "pip")
    registry = publish_support.start_registry(work / "registry")
    try:
        layer = publish_support.debian_rootfs_layer()
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHON_VERSION": "3.11", "LANG": "C.UTF-8"}
        publish_support.push_base_image(
            registry, "base/debian-python", "3.11", layer,
            platforms=["linux/amd64"], env=env, as_index=False,
        )  # fmt: skip
        covalent_ecs = str(Path(sys.executable).with_name("covalent-ecs"))
        published = subprocess.run(
            [covalent_ecs, "publish-image", "--registry", registry.url, "--repository", "runner",
             "--base-image", f"{registry.host}/base/debian-python:3.11", "--platform", "linux/amd64"],
            capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        if published.returncode != 0:
            raise SystemExit(f"publish-image failed:\n{published.stderr[-3000:]}")
        reference = published.stdout.strip().splitlines()[-1]
        layout, bundle = work / "oci", work / "bundle"
        subprocess.run(
            [publish_support.require_tool("skopeo", "skopeo"), "copy", "--quiet", "--src-tls-verify=false",
             f"docker://{reference}", f"oci:{layout}:runner"],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        subprocess.run(
            [
                publish_support.require_tool("umoci", "umoci"),
                "unpack",
                "--image",
                f"{layout}:runner",
                str(bundle),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
    finally:
        publish_support.stop_registry(registry)
    (work / "reference").write_text(reference)
    return reference, bundle


def measure(reference: str, bundle: Path, n: int) -> list[dict[str, float]]:
    """Run ``n`` tasks one at a time; each one's start figures (seconds)."""
    import cloudpickle
    from covalent._workflow.transport import TransportableObject
    from covalent.executor.utils.wrappers import wrapper_fn

    from covalent_ecs_executor import ECSExecutor, records
    from covalent_ecs_executor.sandbox import Sandbox
    from covalent_ecs_executor.sandbox.image_roots import ImageRootStarter

    # This module is not importable in the image: ship the function by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    figures = []
    with Sandbox(starters=[ImageRootStarter({reference: str(bundle)})]) as sandbox:
        config = sandbox.executor_config
        executor = ECSExecutor(**config, container_image_uri=reference)
        s3 = sandbox.client("s3")
        for index in range(n):
            function = functools.partial(wrapper_fn, TransportableObject(square_plus_one), [], [])
            run = executor.run(
                function, [TransportableObject(index)], {},
                {"dispatch_id": "runner-start", "node_id": index, "results_dir": "/tmp"},
            )  # fmt: skip
            result = asyncio.run(asyncio.wait_for(run, 120))  # a ceiling for a broken run
            assert result.get_deserialized() == index * index + 1
            (record,) = records.read_dispatch(s3, config["s3_bucket_name"], "runner-start", index)
            attempt = record["attempts"][-1]
            marks = attempt["marks"]
            figures.append(
                {
                    "start_to_function_s": marks["function_started"] - marks["started"],
                    **attempt["runner_start"],
                }
            )
            print(f"  task {index + 1}/{n}: {figures[-1]['start_to_function_s']:.3f} s", flush=True)
    return figures


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summarise(figures: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    return {
        name: {
            "p50": round(statistics.median(f[name] for f in figures), 3),
            "p95": round(percentile([f[name] for f in figures], 0.95), 3),
        }
        for name in ("start_to_function_s", *PARTS)
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/runner_start.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--n", type=int, default=12, help="cold starts to measure (default 12)")
    parser.add_argument(
        "--bundle", type=Path, help="an unpacked runner image (its parent holds 'reference')"
    )
    parser.add_argument("--keep", type=Path, help="build the bundle here and keep it")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("benchmarks/runner_start.py needs root (debootstrap, umoci, chroot)")
    work = args.keep or Path(tempfile.mkdtemp(prefix="covalent-ecs-runner-start-"))
    # `import covalent` writes its config, database and cache: keep them out of $HOME.
    for name in ("CONFIG", "DATA", "CACHE"):
        os.environ.setdefault(f"COVALENT_{name}_DIR", str(work / "covalent" / name.lower()))
    os.environ.setdefault("COVALENT_DATABASE", str(work / "covalent" / "dispatcher.db"))
    try:
        if args.bundle:
            bundle = args.bundle
            reference = (bundle.parent / "reference").read_text().strip()
        else:
            print("publishing the runner image on the Debian base ...", flush=True)
            reference, bundle = build_bundle(work)
        print(f"{args.n} cold starts of {reference} ...", flush=True)
        figures = measure(reference, bundle, args.n)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    table = summarise(figures)
    labels = {
        "start_to_function_s": "container start → function start",
        "interpreter_s": "  interpreter",
        "imports_s": "  runner imports",
        "payload_s": "  payload fetch + MAC",
        "unpickle_s": "  unpickle",
    }
    print(
        f"\n{'published image, cold interpreter':40} {'p50 s':>8} {'p95 s':>8}   (n={len(figures)})"
    )
    for name, label in labels.items():
        print(f"{label:40} {table[name]['p50']:8.3f} {table[name]['p95']:8.3f}")
    if args.json:
        args.json.write_text(
            json.dumps({"n": len(figures), "summary": table, "runs": figures}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
