"""``covalent-ecs publish-image`` against a real registry (docker-registry on 127.0.0.1).

These use the tiny two-platform ``synthetic_base``: what is checked is what the command
pushes (index, manifests, configs, layers, tags), read back with plain HTTP requests, not
through the project's registry client.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from covalent_ecs_runtime import contract

Registry = Any  # conftest.Registry (test folders are not packages)

pytestmark = pytest.mark.integration

COVALENT_ECS = str(Path(sys.executable).with_name("covalent-ecs"))
ACCEPT = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"


def publish_image(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [COVALENT_ECS, "publish-image", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"publish-image failed:\n{result.stderr}\n{result.stdout}"
    return result.stdout.strip().splitlines()[-1]


def get(registry: Registry, path: str) -> httpx.Response:
    response = httpx.get(f"{registry.url}/v2/{path}", headers={"Accept": ACCEPT})
    assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
    return response


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def published(registry: Registry, synthetic_base: str) -> dict[str, Any]:
    """One publish of both platforms; the output and the reference it printed."""
    uploads_before = registry.requests("POST", "/runner/blobs/uploads/")
    result = publish_image(
        "--registry", registry.url, "--repository", "runner", "--tag", "v1",
        "--base-image", synthetic_base, "--platform", "linux/amd64", "--platform", "linux/arm64",
    )  # fmt: skip
    reference = last_line(result)
    return {
        "reference": reference,
        "stderr": result.stderr,
        "uploads": registry.requests("POST", "/runner/blobs/uploads/") - uploads_before,
    }


def test_publish_prints_the_pushed_reference_with_its_digest_last(
    published: dict[str, Any], registry: Registry
) -> None:
    reference = published["reference"]
    name, _, digest = reference.partition("@")
    assert name == f"{registry.host}/runner"
    index_body = get(registry, f"runner/manifests/{digest}").content
    assert sha256(index_body) == digest
    tagged = get(registry, "runner/manifests/v1").content
    assert sha256(tagged) == digest
    # The content-derived second tag points at the same index.
    assert sha256(get(registry, f"runner/manifests/v1-{digest[7:19]}").content) == digest


def test_index_manifests_and_every_blob_are_retrievable_and_verify(
    published: dict[str, Any], registry: Registry
) -> None:
    digest = published["reference"].partition("@")[2]
    index = json.loads(get(registry, f"runner/manifests/{digest}").content)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    platforms = {
        (m["platform"]["os"], m["platform"]["architecture"]): m for m in index["manifests"]
    }
    assert set(platforms) == {("linux", "amd64"), ("linux", "arm64")}
    layer_digests: dict[str, list[str]] = {}
    for (_, arch), descriptor in platforms.items():
        body = get(registry, f"runner/manifests/{descriptor['digest']}").content
        assert sha256(body) == descriptor["digest"] and len(body) == descriptor["size"]
        manifest = json.loads(body)
        config_body = get(registry, f"runner/blobs/{manifest['config']['digest']}").content
        assert sha256(config_body) == manifest["config"]["digest"]
        config = json.loads(config_body)
        assert config["architecture"] == arch
        diff_ids = []
        for layer in manifest["layers"]:
            blob = get(registry, f"runner/blobs/{layer['digest']}").content
            assert sha256(blob) == layer["digest"] and len(blob) == layer["size"]
            diff_ids.append(sha256(gzip.decompress(blob)))
        # diff_ids are the digests of the uncompressed layers, in order.
        assert config["rootfs"]["diff_ids"] == diff_ids
        layer_digests[arch] = [layer["digest"] for layer in manifest["layers"]]
    # Same base layer and runner layer on both; the dependency layers differ by platform.
    amd64, arm64 = layer_digests["amd64"], layer_digests["arm64"]
    assert amd64[0] == arm64[0] and amd64[-1] == arm64[-1] and amd64[-2] != arm64[-2]


def test_image_config_carries_the_runner_contract_and_versions(
    published: dict[str, Any], registry: Registry
) -> None:
    digest = published["reference"].partition("@")[2]
    index = json.loads(get(registry, f"runner/manifests/{digest}").content)
    manifest = json.loads(
        get(registry, f"runner/manifests/{index['manifests'][0]['digest']}").content
    )
    config = json.loads(get(registry, f"runner/blobs/{manifest['config']['digest']}").content)
    settings = config["config"]
    env = dict(item.split("=", 1) for item in settings["Env"])
    assert settings["Entrypoint"] == contract.ENTRY_POINT
    assert "Cmd" not in settings  # the base's CMD would be appended to the entrypoint
    assert settings["User"] == "65532:65532"
    assert env["HOME"] == "/home/runner"
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"  # the base's, kept
    versions = contract.runtime_versions()
    labels = settings["Labels"]
    assert labels["io.covalent-ecs.python"] == versions["python"]
    assert labels["io.covalent-ecs.cloudpickle"] == versions["cloudpickle"]
    assert labels["io.covalent-ecs.runner"] == versions["runner"]
    assert labels["org.opencontainers.image.base.name"].endswith("/base/synthetic:1")


def test_base_layers_are_mounted_from_the_base_repository_not_uploaded(
    published: dict[str, Any],
) -> None:
    assert "mounted from base/synthetic" in published["stderr"]
    # Uploaded: 2 dependency layers, the runner layer, 2 configs.
    assert published["uploads"] == 5 + 1  # + the mount request, which is also a POST


def test_republish_with_nothing_changed_uploads_nothing_and_says_so(
    published: dict[str, Any], registry: Registry, synthetic_base: str
) -> None:
    posts_before = registry.requests("POST", "/runner/blobs/uploads/")
    puts_before = registry.requests("PUT", "/runner/manifests/")
    result = publish_image(
        "--registry", registry.url, "--repository", "runner", "--tag", "v1",
        "--base-image", synthetic_base, "--platform", "linux/amd64,linux/arm64",
    )  # fmt: skip
    assert last_line(result) == published["reference"]
    assert registry.requests("POST", "/runner/blobs/uploads/") == posts_before
    assert registry.requests("PUT", "/runner/manifests/") == puts_before
    assert "nothing changed" in result.stderr
    assert "cached layer" in result.stderr  # no pip run either


def test_same_inputs_give_the_same_image_from_a_cold_cache(
    published: dict[str, Any], registry: Registry, synthetic_base: str, tmp_path: Path
) -> None:
    # linux/amd64 alone (half the build): its manifest must be the one in the first index.
    result = publish_image(
        "--registry", registry.url, "--repository", "runner-again", "--tag", "v1",
        "--base-image", synthetic_base, "--platform", "linux/amd64",
        env={"COVALENT_ECS_PUBLISH_CACHE": str(tmp_path / "cold-cache")},
    )  # fmt: skip
    assert "cached layer" not in result.stderr  # pip ran again
    rebuilt = json.loads(
        get(registry, f"runner-again/manifests/{last_line(result).partition('@')[2]}").content
    )
    first = json.loads(
        get(registry, f"runner/manifests/{published['reference'].partition('@')[2]}").content
    )
    amd64 = next(m for m in first["manifests"] if m["platform"]["architecture"] == "amd64")
    assert rebuilt["manifests"][0]["digest"] == amd64["digest"]


def test_registry_credentials_are_sent_and_a_wrong_password_is_denied(
    auth_registry: Registry, registry: Registry, synthetic_base: str
) -> None:
    user, password = auth_registry.credentials or ("", "")
    args = ["--registry", auth_registry.url, "--repository", "runner", "--base-image",
            synthetic_base, "--platform", "linux/amd64"]  # fmt: skip
    missing = publish_image(*args)
    assert missing.returncode == 1
    assert "asks for credentials" in missing.stderr
    assert "COVALENT_ECS_REGISTRY_USERNAME" in missing.stderr
    wrong = publish_image(
        *args,
        env={"COVALENT_ECS_REGISTRY_USERNAME": user, "COVALENT_ECS_REGISTRY_PASSWORD": "nope"},
    )
    assert wrong.returncode == 1
    assert "denied access to push to repository 'runner'" in wrong.stderr
    good = publish_image(
        *args,
        env={"COVALENT_ECS_REGISTRY_USERNAME": user, "COVALENT_ECS_REGISTRY_PASSWORD": password},
    )
    reference = last_line(good)
    assert reference.startswith(f"{auth_registry.host}/runner@sha256:")
    assert f"tag {contract.runner_image_tag()} -> " in good.stderr
    # Base layers live on another registry: fetched from there, then uploaded here.
    assert "fetched from the base registry" in good.stderr or "already in" in good.stderr


def test_unreachable_registry_fails_before_building(synthetic_base: str) -> None:
    result = publish_image(
        "--registry", "http://127.0.0.1:9", "--repository", "runner",
        "--base-image", synthetic_base,
    )  # fmt: skip
    assert result.returncode == 1
    assert "cannot reach the registry http://127.0.0.1:9" in result.stderr
    assert "pip install" not in result.stderr


def test_base_image_without_a_requested_platform_is_named(
    registry: Registry, synthetic_base: str
) -> None:
    result = publish_image(
        "--registry", registry.url, "--repository", "runner",
        "--base-image", f"{registry.host}/base/amd64-only:1", "--platform", "linux/arm64",
    )  # fmt: skip
    assert result.returncode == 1
    assert "has no linux/arm64 image (it has: linux/amd64)" in result.stderr


def test_bad_flags_are_rejected_with_the_valid_choices(registry: Registry) -> None:
    bad_platform = publish_image("--registry", registry.url, "--platform", "linux/s390x")
    assert bad_platform.returncode == 1
    assert "linux/amd64, linux/arm64" in bad_platform.stderr
    bad_tag = publish_image("--registry", registry.url, "--tag", "-bad:tag")
    assert bad_tag.returncode == 1
    assert "--tag '-bad:tag' is not a valid tag" in bad_tag.stderr
    plain_http = publish_image("--registry", "http://registry.example.com")
    assert plain_http.returncode == 1
    assert "plain HTTP is only allowed for 127.0.0.1/localhost" in plain_http.stderr


def test_republishing_into_immutable_tags_leaves_a_matching_tag_and_never_moves_one(
    published: dict[str, Any], registry: Registry, synthetic_base: str
) -> None:
    from covalent_ecs_executor.image import publish
    from covalent_ecs_executor.image.registry import RegistryClient, RegistryError

    digest = published["reference"].partition("@")[2]
    target = publish.Target(RegistryClient(registry.url), "runner", immutable_tags=True)
    try:
        # The same image: both tags already point at it, nothing is pushed.
        puts_before = registry.requests("PUT", "/runner/manifests/")
        lines: list[str] = []
        same = publish.publish(
            target, tag="v1", base_image=synthetic_base,
            platforms=["linux/amd64", "linux/arm64"], report=lines.append,
        )  # fmt: skip
        assert same.reference == published["reference"]
        assert f"tag v1: already points at {digest[:19]}" in lines
        assert registry.requests("PUT", "/runner/manifests/") == puts_before
        # Another image under the same version tag: refused, the tag does not move, and
        # the new image is still pushed under its digest-suffixed tag.
        with pytest.raises(RegistryError, match=r"tag v1 in .* already points at another image") as caught:
            publish.publish(target, tag="v1", base_image=synthetic_base, platforms=["linux/amd64"], report=print)
        assert "immutable" in str(caught.value) and "container_image_uri" in str(caught.value)
        assert sha256(get(registry, "runner/manifests/v1").content) == digest
        other = str(caught.value).split("was pushed as ", 1)[1].split(" ", 1)[0]
        other_digest = other.partition("@")[2]
        assert other_digest != digest
        assert sha256(get(registry, f"runner/manifests/v1-{other_digest[7:19]}").content) == other_digest
    finally:
        target.client.close()
