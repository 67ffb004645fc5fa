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
from covalent_ecs_runtime import signing

BUCKET = staging.Bucket(name="b", owner="123456789012")
KEY = signing.SigningKey.new()


@pytest.fixture
def s3():
    client = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    with Stubber(client) as stubber:
        yield client, stubber


def test_an_upload_denied_is_a_staging_error_naming_the_object_bucket_and_owner(s3, tmp_path):
    # Every staging request names the expected owner: S3's 403 may mean another
    # account owns the bucket, and the message says so.
    client, stubber = s3
    stubber.add_client_error("put_object", "AccessDenied", "Access Denied", 403)
    with pytest.raises(StagingError) as caught:
        staging.upload_payload(
            client, BUCKET, "covalent-ecs/d/0/payload.pkl", {"x": 1}, str(tmp_path), KEY
        )
    message = str(caught.value)
    assert "upload the task payload to s3://b/covalent-ecs/d/0/payload.pkl" in message
    assert "S3 denied access to bucket 'b' (AccessDenied)" in message
    assert "belong to account 123456789012" in message


def test_a_missing_result_is_no_result_and_a_denied_one_is_a_staging_error(s3, tmp_path):
    client, stubber = s3
    stubber.add_client_error("get_object", "NoSuchKey", "The specified key does not exist.", 404)
    stubber.add_client_error("get_object", "AccessDenied", "Access Denied", 403)
    assert staging.download_result(client, BUCKET, "k/result.pkl", str(tmp_path), KEY) is None
    with pytest.raises(StagingError, match=r"download the result s3://b/k/result.pkl: S3 denied"):
        staging.download_result(client, BUCKET, "k/result.pkl", str(tmp_path), KEY)
