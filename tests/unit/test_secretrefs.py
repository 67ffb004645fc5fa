"""What a `secrets` ARN needs from IAM and which SSM parameter it names (pure)."""

import pytest

from covalent_ecs_executor.secretrefs import parameter_names, secret_resource, secret_suffix

SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-login-AbCdEf"


@pytest.mark.parametrize(
    ("value_from", "resource", "action"),
    [
        (SECRET, SECRET, "secretsmanager:GetSecretValue"),
        (f"{SECRET}:password::", SECRET, "secretsmanager:GetSecretValue"),  # IAM: the secret itself
        (f"{SECRET}::AWSPREVIOUS:", SECRET, "secretsmanager:GetSecretValue"),
        ("arn:aws:ssm:us-east-1:123456789012:parameter/a/b", "arn:aws:ssm:us-east-1:123456789012:parameter/a/b", "ssm:GetParameters"),
    ],
)
def test_the_iam_resource_and_action_of_a_secret(value_from, resource, action):
    assert secret_resource(value_from)[:2] == (resource, action)


def test_the_region_and_json_suffix_of_a_secret():
    assert secret_resource(f"{SECRET}:password::")[2] == "eu-west-1"
    assert secret_suffix(f"{SECRET}:password:AWSCURRENT:v1") == ("password", "AWSCURRENT", "v1")
    assert secret_suffix(SECRET) == ("", "", "")


def test_the_parameter_an_ssm_arn_names():
    assert parameter_names("arn:aws:ssm:us-east-1:1:parameter/team/db") == ["/team/db"]
    assert parameter_names("arn:aws:ssm:us-east-1:1:parameter/plain") == ["plain", "/plain"]
