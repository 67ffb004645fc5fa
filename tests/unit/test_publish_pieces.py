"""Pure pieces of publish-image: reproducible layers, references, registry URLs, flags."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from covalent_ecs_executor.errors import ECSExecutorError
from covalent_ecs_executor.image import layers, oci, publish
from covalent_ecs_executor.image.refs import DOCKER_HUB, ImageRef
from covalent_ecs_executor.image.registry import RegistryError, base_url


def make_tree(root: Path, mtime: int) -> None:
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text("A = 1\n")
    (root / "pkg" / "sub" / "b.py").write_text("B = 2\n")
    (root / "tool").write_text("#!/bin/sh\n")
    os.chmod(root / "tool", 0o700)
    os.symlink("pkg/a.py", root / "link")
    for path in root.rglob("*"):
        os.utime(path, (mtime, mtime), follow_symlinks=False)


def test_same_files_with_other_mtimes_give_the_same_layer_digest(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    make_tree(first, 1_000_000)
    make_tree(second, 2_000_000)
    a = oci.write_layer(oci.tree_entries(str(first), "opt/x"), str(tmp_path / "a.tar.gz"))
    b = oci.write_layer(oci.tree_entries(str(second), "opt/x"), str(tmp_path / "b.tar.gz"))
    assert (a.digest, a.diff_id, a.size) == (b.digest, b.diff_id, b.size)
    data = Path(a.path).read_bytes()
    assert a.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert a.diff_id == "sha256:" + hashlib.sha256(gzip.decompress(data)).hexdigest()


def test_layer_entries_are_sorted_owned_by_root_with_parents_and_normalised_modes(
    tmp_path: Path,
) -> None:
    make_tree(tmp_path / "src", 1_000_000)
    layer = oci.write_layer(oci.tree_entries(str(tmp_path / "src"), "/opt/x/"), str(tmp_path / "l"))
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(Path(layer.path).read_bytes()))) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert names[:2] == ["opt", "opt/x"]
    by_name = {m.name: m for m in members}
    assert {(m.uid, m.gid, m.mtime) for m in members} == {(0, 0, 0)}
    assert by_name["opt/x/tool"].mode == 0o755
    assert by_name["opt/x/pkg/a.py"].mode == 0o644
    assert by_name["opt/x/link"].issym() and by_name["opt/x/link"].linkname == "pkg/a.py"


def test_kept_owner_and_mtime_are_written_for_a_base_rootfs(tmp_path: Path) -> None:
    make_tree(tmp_path / "src", 1_234_567)
    layer = oci.write_layer(
        oci.tree_entries(str(tmp_path / "src"), ""), str(tmp_path / "l"), keep_mtime=True
    )
    with tarfile.open(layer.path) as tar:
        assert tar.getmember("pkg/a.py").mtime == 1_234_567


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("python:3.11-slim", DOCKER_HUB, "library/python", "3.11-slim", None),
        ("public.ecr.aws/docker/library/python:3.11-slim", "public.ecr.aws", "docker/library/python", "3.11-slim", None),
        ("127.0.0.1:5000/base/py", "127.0.0.1:5000", "base/py", "latest", None),
        ("localhost/x@sha256:" + "a" * 64, "localhost", "x", None, "sha256:" + "a" * 64),
    ],
)  # fmt: skip
def test_image_references_are_parsed_like_docker_does(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    assert ImageRef.parse(text) == ImageRef(registry, repository, tag, digest)


def test_plain_http_is_only_allowed_for_loopback_registries() -> None:
    assert base_url("127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert base_url("http://localhost:5000/") == "http://localhost:5000"
    assert base_url("ghcr.io") == "https://ghcr.io"
    with pytest.raises(RegistryError, match="only allowed for 127.0.0.1/localhost"):
        base_url("http://registry.example.com")


def test_platforms_accept_repeats_and_commas_and_name_the_valid_ones() -> None:
    assert publish.parse_platforms([]) == ["linux/amd64", "linux/arm64"]
    assert publish.parse_platforms(["linux/arm64", "linux/amd64,linux/arm64"]) == [
        "linux/arm64",
        "linux/amd64",
    ]
    with pytest.raises(ECSExecutorError, match="choose from linux/amd64, linux/arm64"):
        publish.parse_platforms(["linux/386"])


def test_pip_is_given_every_manylinux_tag_up_to_bookworms_glibc() -> None:
    tags = layers.pip_platform_tags("linux/arm64")
    assert tags[0] == "manylinux_2_36_aarch64"
    assert "manylinux_2_17_aarch64" in tags and "manylinux2014_aarch64" in tags


def test_image_config_keeps_the_base_env_and_drops_its_cmd() -> None:
    base = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin", "LANG=C.UTF-8"], "Cmd": ["python3"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]},
    }
    layer = oci.Layer("", "sha256:" + "1" * 64, 1, oci.MEDIA_LAYER_GZIP, "sha256:" + "2" * 64)
    config = oci.image_config(
        base, added=[("deps", layer)], env={"HOME": "/home/runner", "LANG": "C"},
        entrypoint=["python", "-m", "x"], user="65532:65532", workdir="/home/runner", labels={},
    )  # fmt: skip
    assert config["config"]["Env"] == ["PATH=/usr/bin", "LANG=C", "HOME=/home/runner"]
    assert "Cmd" not in config["config"]
    assert config["rootfs"]["diff_ids"] == ["sha256:" + "0" * 64, "sha256:" + "2" * 64]
    assert config["created"] == oci.EPOCH
