"""botocore's errors are translated in one place: aws.py.

Every other product module calls AWS through ``aws.call`` / ``aws.pages`` and branches on
``aws.has_code`` / ``aws.is_unreachable``, so none of them imports botocore's exceptions.
The sandbox (a local AWS API built on moto) is not product code on the task path.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from covalent_ecs_executor import aws
from covalent_ecs_executor.errors import AWSSetupError, LaunchError

PACKAGE = Path(aws.__file__).parent


def botocore_exception_imports(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("botocore.exceptions"):
            lines.append(node.lineno)
        if isinstance(node, ast.Import) and any(a.name == "botocore.exceptions" for a in node.names):
            lines.append(node.lineno)
    return lines


def test_only_aws_py_imports_botocore_exceptions():
    importers = {
        str(path.relative_to(PACKAGE)): botocore_exception_imports(path)
        for path in PACKAGE.rglob("*.py")
        if "sandbox" not in path.relative_to(PACKAGE).parts
    }
    assert {name for name, lines in importers.items() if lines} == {"aws.py"}


def answer(code: str, message: str = "m") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "GetObject")


def raising(err: Exception):
    def method(**_: object) -> None:
        raise err

    return method


def test_a_translated_error_still_answers_which_code_it_was():
    with pytest.raises(AWSSetupError, match="could not read s3://b/k: NoSuchKey") as caught:
        aws.call(raising(answer("NoSuchKey")), "read s3://b/k")
    assert aws.has_code(caught.value, "NoSuchKey", "404")
    assert not aws.has_code(caught.value, "AccessDenied")
    assert not aws.is_unreachable(caught.value)
    wrapped = RuntimeError("outer")
    wrapped.__cause__ = caught.value
    assert aws.has_code(wrapped, "NoSuchKey")  # e.g. a StagingError raised from it


def test_an_unreachable_endpoint_is_told_apart_from_an_answer():
    unreachable = EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
    with pytest.raises(AWSSetupError, match="http://127.0.0.1:9 is unreachable") as caught:
        aws.call(raising(unreachable), "look up the caller")
    assert aws.is_unreachable(caught.value)
    assert not aws.has_code(caught.value, "NoSuchKey")


def test_throttling_through_every_retry_is_a_launch_error():
    with pytest.raises(LaunchError, match="kept throttling"):
        aws.call(raising(answer("ThrottlingException")), "run a task")


def test_boto3_transfer_wrappers_are_translated_by_their_cause():
    from boto3.exceptions import S3UploadFailedError

    def upload(**_: object) -> None:
        try:
            raise answer("AccessDenied", "Access Denied")
        except ClientError as err:  # what boto3's upload_file does
            raise S3UploadFailedError(f"Failed to upload: {err}")  # noqa: B904

    with pytest.raises(AWSSetupError, match="upload s3://b/k: AWS denied access") as caught:
        aws.call(upload, "upload s3://b/k")
    assert aws.has_code(caught.value, "AccessDenied")
