"""Staging's failures read as staging errors naming the s3:// object, with aws.py's cause.

A real botocore S3 client answers through botocore's Stubber (the sandbox does not
enforce IAM, so an access-denied answer cannot come from it).
"""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from covalent_ecs_executor import staging
from covalent_ecs_executor.errors import StagingError


@pytest.fixture
def s3():
    client = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    with Stubber(client) as stubber:
        yield client, stubber


def test_an_upload_denied_is_a_staging_error_naming_the_object_and_the_cause(s3, tmp_path):
    client, stubber = s3
    stubber.add_client_error("put_object", "AccessDenied", "Access Denied", 403)
    with pytest.raises(StagingError) as caught:
        staging.upload_payload(client, "b", "covalent-ecs/d/0/payload.pkl", {"x": 1}, str(tmp_path))
    message = str(caught.value)
    assert "upload the task payload to s3://b/covalent-ecs/d/0/payload.pkl" in message
    assert "AWS denied access (AccessDenied" in message


def test_a_missing_result_is_no_result_and_a_denied_one_is_a_staging_error(s3, tmp_path):
    client, stubber = s3
    stubber.add_client_error("get_object", "NoSuchKey", "The specified key does not exist.", 404)
    stubber.add_client_error("get_object", "AccessDenied", "Access Denied", 403)
    assert staging.download_result(client, "b", "k/result.pkl", str(tmp_path)) is None
    with pytest.raises(StagingError, match=r"download the result s3://b/k/result.pkl: AWS denied"):
        staging.download_result(client, "b", "k/result.pkl", str(tmp_path))
