"""The one image-reference parser: what config validation, publishing, doctor and the
sandbox's agent all read an image reference with."""

from __future__ import annotations

import pytest

from covalent_ecs_executor.config import build_config
from covalent_ecs_executor.errors import ConfigError
from covalent_ecs_executor.image.refs import ImageRef, default_runner_image, parse_ecr_image
from covalent_ecs_runtime import contract

ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
DIGEST = "sha256:" + "0" * 64


@pytest.mark.parametrize(
    ("text", "account", "region", "repository", "tag", "digest"),
    [
        (f"{ECR}/team/runner:v1", "123456789012", "eu-west-1", "team/runner", "v1", None),
        (f"{ECR}/runner", "123456789012", "eu-west-1", "runner", "latest", None),
        (f"{ECR}/runner@{DIGEST}", "123456789012", "eu-west-1", "runner", None, DIGEST),
        ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/r:t", "123456789012", "cn-north-1", "r", "t", None),
    ],
)  # fmt: skip
def test_an_ecr_uri_gives_its_account_region_and_image(text, account, region, repository, tag, digest):
    ref = parse_ecr_image(text)
    assert ref is not None
    assert (ref.account, ref.region, ref.repository, ref.tag, ref.digest) == (
        account, region, repository, tag, digest
    )  # fmt: skip
    assert ImageRef.parse(str(ref)) == ref


@pytest.mark.parametrize("text", ["python:3.11", "ghcr.io/me/runner:1", "not a uri", f"{ECR}/Runner:1"])
def test_anything_but_a_valid_ecr_uri_is_not_an_ecr_image(text):
    assert parse_ecr_image(text) is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("not a uri", "is not valid"),
        ("Upper/Case:1", "is not valid"),
        ("repo/name:bad tag", "is not valid"),
        ("repo/name@sha256:abc", "malformed digest"),
    ],
)
def test_a_bad_reference_is_a_config_error_naming_it(text, words):
    with pytest.raises(ConfigError, match=words) as caught:
        ImageRef.parse(text)
    assert repr(text) in str(caught.value) and "expected" in str(caught.value)


def test_config_validates_container_image_uri_with_the_same_parser():
    assert build_config({"container_image_uri": f"{ECR}/r@{DIGEST}"}, {}).container_image_uri
    assert build_config({"container_image_uri": "127.0.0.1:5000/base/py:1"}, {})
    with pytest.raises(ConfigError, match="container_image_uri='repo/name:bad tag'"):
        build_config({"container_image_uri": "repo/name:bad tag"}, {})


def test_the_default_runner_image_is_this_versions_tag_in_the_repository():
    uri = default_runner_image(ECR, "covalent-ecs-runner")
    assert uri == f"{ECR}/covalent-ecs-runner:{contract.runner_image_tag()}"
    ref = parse_ecr_image(uri)
    assert ref is not None and ref.tag == contract.runner_image_tag()
