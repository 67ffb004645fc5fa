"""The published runner image works: copied out of the registry, it runs the runner.

Built on ``debian_base`` (a real Debian bookworm + Python 3.11 root file system made by
debootstrap, cached between runs), published to the loopback registry, copied out with
``skopeo`` and unpacked with ``umoci`` (which checks every layer against its diff_id),
then:

* ``python -m covalent_ecs_runtime --version`` runs in a chroot as the image's user;
* one real covalent-shaped task runs on it through the executor and the sandbox, the
  sandbox's agent running the task chrooted in the unpacked image (``ImageRootStarter``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from covalent_ecs_runtime import contract

pytestmark = pytest.mark.integration

COVALENT_ECS = str(Path(sys.executable).with_name("covalent-ecs"))


@pytest.fixture(scope="module")
def runner_bundle(
    registry: Any, debian_base: str, publish_dirs: Path, skopeo: str, umoci: str
) -> dict[str, Any]:
    """Publish on the Debian base; copy the image out (skopeo) and unpack it (umoci)."""
    if os.geteuid() != 0:
        pytest.fail("running the published image needs root (umoci unpack, chroot)")
    result = subprocess.run(
        [COVALENT_ECS, "publish-image", "--registry", registry.url,
         "--repository", "runner-debian", "--base-image", debian_base, "--platform", "linux/amd64"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    reference = result.stdout.strip().splitlines()[-1]
    layout = publish_dirs / "runner-oci"
    bundle = publish_dirs / "runner-bundle"
    subprocess.run(
        [skopeo, "copy", "--quiet", "--src-tls-verify=false", f"docker://{reference}",
         f"oci:{layout}:runner"],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    subprocess.run(
        [umoci, "unpack", "--image", f"{layout}:runner", str(bundle)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    spec = json.loads((bundle / "config.json").read_text())
    return {"reference": reference, "bundle": bundle, "spec": spec, "output": result.stderr}


def run_in_image(bundle: dict[str, Any], *argv: str) -> subprocess.CompletedProcess[str]:
    """``argv`` in a chroot of the unpacked image, as its user, with its env and workdir."""
    process = bundle["spec"]["process"]
    user = process["user"]
    rootfs = bundle["bundle"] / "rootfs"
    # Like a container runtime: a private mount namespace with /proc (psutil reads it)
    # and /dev (multiprocessing needs /dev/shm) inside the image.
    script = (
        'root="$1" user="$2" cwd="$3"; shift 3; '
        'mount -t proc proc "$root/proc" && mount --rbind /dev "$root/dev" && '
        'exec chroot --userspec="$user" "$root" /bin/sh -c \'cd "$1" && shift && exec "$@"\' '
        'sh "$cwd" "$@"'
    )
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script, "sh",
         str(rootfs), f"{user['uid']}:{user['gid']}", process["cwd"], *argv],
        env=dict(item.split("=", 1) for item in process["env"]),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_published_image_runs_the_runner_as_its_user(runner_bundle: dict[str, Any]) -> None:
    result = run_in_image(runner_bundle, *contract.ENTRY_POINT, "--version")
    assert result.returncode == 0, result.stderr
    versions = contract.runtime_versions()
    assert result.stdout.split() == [f"{name}={value}" for name, value in versions.items()]
    whoami = run_in_image(runner_bundle, "python", "-c", "import os; print(os.getuid())")
    assert whoami.stdout.strip() == "65532"


def test_published_image_imports_what_a_task_needs_from_shipped_pyc(
    runner_bundle: dict[str, Any],
) -> None:
    code = (
        "import sys, covalent.executor.utils.wrappers, boto3, cloudpickle;"
        "boto3.client('s3', region_name='us-east-1');"
        "print(sys.modules['covalent'].__file__, cloudpickle.__version__)"
    )
    result = run_in_image(runner_bundle, "python", "-c", code)
    assert result.returncode == 0, result.stderr
    location, pickle_version = result.stdout.split()
    assert location == "/opt/covalent-ecs/site-packages/covalent/__init__.py"
    assert pickle_version == cloudpickle.__version__
    # PYTHONDONTWRITEBYTECODE and a read-only-for-the-user tree: nothing was compiled
    # at run time, so the shipped .pyc were used.
    pycache = runner_bundle["bundle"] / "rootfs/opt/covalent-ecs/site-packages/covalent/__pycache__"
    assert any(name.startswith("__init__.cpython-311") for name in os.listdir(pycache))


def square_plus_one(x: int) -> int:
    print(f"computing {x}**2 + 1 in the published image")
    return x * x + 1


def test_published_image_runs_a_real_task_against_the_sandbox(
    runner_bundle: dict[str, Any],
) -> None:
    from covalent._workflow.transport import TransportableObject
    from covalent.executor.utils.wrappers import wrapper_fn

    from covalent_ecs_executor import ECSExecutor
    from covalent_ecs_executor.sandbox import Sandbox
    from covalent_ecs_executor.sandbox.image_roots import ImageRootStarter

    reference = runner_bundle["reference"]
    # The test module is not importable in the image: ship the function by value, as a
    # user would for their own modules.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        roots = ImageRootStarter({reference: str(runner_bundle["bundle"])})
        with Sandbox(starters=[roots]) as sandbox:
            executor = ECSExecutor(**sandbox.executor_config, container_image_uri=reference)
            function = functools.partial(wrapper_fn, TransportableObject(square_plus_one), [], [])
            run = executor.run(
                function,
                [TransportableObject(6)],
                {},
                {"dispatch_id": "publish-test", "node_id": 0, "results_dir": "/tmp"},
            )
            # Seconds in the chroot; a ceiling for a broken run, not a pace.
            result = asyncio.run(asyncio.wait_for(run, 120))
            (task,) = sandbox.tasks()
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert result.get_deserialized() == 37
    assert task["exitCode"] == 0
    # The image's interpreter ran it (not the host's), inside the unpacked image.
    assert task["argv"][:3] == contract.ENTRY_POINT
    assert task["env"]["HOME"] == "/home/runner"
