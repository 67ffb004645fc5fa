"""What a user's AWS account would hold before the first task: created in the sandbox.

``seed(clients, state_dir)`` creates, through the sandbox's own AWS API (with
sandbox-internal clients, so nothing is counted):

* an S3 bucket with default encryption (SSE-S3),
* an ECS cluster and a CloudWatch log group,
* the IAM roles ``ecsTaskExecutionRole`` and ``CovalentFargateTaskRole`` (trusting
  ecs-tasks.amazonaws.com; the task role may read and write the staging prefix),
* a VPC with one public subnet (default route to an internet gateway, as tasks with
  ``assign_public_ip`` need to reach ECR) and a security group (egress only),
* the ECR repository ``covalent-ecs-sandbox-runner`` with an image tagged
  ``contract.runner_image_tag()`` (its digest: sha256 of its manifest, as ECR's), so
  the executor's default image is pullable and resolves to a digest,
* a shared-credentials file with a ``[sandbox]`` profile (fake keys) in ``state_dir``,

and returns the ``[executors.ecs]`` block a user would write in covalent.conf.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from typing import Any

from covalent_ecs_runtime import contract

from ..setup.iampolicy import AWS_MANAGED_POLICIES

REGION = "us-east-1"
PROFILE = "sandbox"
# Fake keys: moto accepts any. They only have to look like keys to botocore.
ACCESS_KEY_ID = "AKIASANDBOX000000000"
SECRET_ACCESS_KEY = "sandbox-secret-access-key-not-a-real-key"

BUCKET = "covalent-ecs-sandbox"
CLUSTER = "covalent-ecs-sandbox"
LOG_GROUP = "/covalent-ecs/sandbox/tasks"
TASK_FAMILY = "covalent-ecs-task"
EXECUTION_ROLE = "ecsTaskExecutionRole"
TASK_ROLE = "CovalentFargateTaskRole"
# Not the template's default repository (covalent-ecs-runner): `covalent-ecs infra deploy`
# with its defaults must be able to create that one in the sandbox.
ECR_REPOSITORY = "covalent-ecs-sandbox-runner"
VPC_CIDR = "10.42.0.0/16"
SUBNET_CIDR = "10.42.1.0/24"
NAME_TAG = "covalent-ecs-sandbox"

_ECS_TASKS_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
# The permissions of AWS's managed AmazonECSTaskExecutionRolePolicy, inline: moto does
# not load AWS managed policies unless MOTO_IAM_LOAD_MANAGED_POLICIES is set (slow).
_EXECUTION_POLICY = AWS_MANAGED_POLICIES["AmazonECSTaskExecutionRolePolicy"]



def _task_role_policy(bucket: str) -> dict[str, Any]:
    """What the runner needs: read the payload, write the result (README, IAM)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": f"arn:aws:s3:::{bucket}/covalent-ecs/*",
            }
        ],
    }


ClientFactory = Callable[[str], Any]


def write_credentials_file(state_dir: str) -> str:
    path = os.path.join(state_dir, "credentials")
    with open(path, "w") as f:
        f.write(
            f"[{PROFILE}]\n"
            f"aws_access_key_id = {ACCESS_KEY_ID}\n"
            f"aws_secret_access_key = {SECRET_ACCESS_KEY}\n"
        )
    os.chmod(path, 0o600)
    return path


# The placeholder's layer claims the published runner image's compressed size (README,
# "Figures": 80.0 MB on the tests' base), so an emulated pull takes as long as that
# image's would (AgentSettings.pull_bandwidth_mb_s).
PLACEHOLDER_IMAGE_BYTES = 80_000_000


def runner_image_manifest() -> str:
    """A minimal OCI manifest for the placeholder runner image (nothing is pulled)."""
    tag = contract.runner_image_tag()
    config_digest = "sha256:" + hashlib.sha256(f"config:{tag}".encode()).hexdigest()
    layer_digest = "sha256:" + hashlib.sha256(f"layer:{tag}".encode()).hexdigest()
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": 2,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest,
                    "size": PLACEHOLDER_IMAGE_BYTES,
                }
            ],
        }
    )


def manifest_digest(manifest: str) -> str:
    """ECR's digest of an image: sha256 of its manifest's bytes (moto would otherwise
    hash the layer digests), so DescribeImages answers what ECR would and the executor
    can pin the runner image by it."""
    return "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()


def seed(client: ClientFactory, *, state_dir: str, endpoint_url: str) -> dict[str, Any]:
    """Create the account's resources; return the executor config block."""
    s3 = client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_encryption(
        Bucket=BUCKET,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    # Both Fargate capacity providers, as `covalent-ecs infra` creates: Spot tasks need one.
    client("ecs").create_cluster(clusterName=CLUSTER, capacityProviders=["FARGATE", "FARGATE_SPOT"])
    client("logs").create_log_group(logGroupName=LOG_GROUP)

    iam = client("iam")
    for role in (EXECUTION_ROLE, TASK_ROLE):
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(_ECS_TASKS_TRUST))
    iam.put_role_policy(
        RoleName=EXECUTION_ROLE,
        PolicyName="AmazonECSTaskExecutionRolePolicy",
        PolicyDocument=json.dumps(_EXECUTION_POLICY),
    )
    iam.put_role_policy(
        RoleName=TASK_ROLE,
        PolicyName="covalent-ecs-staging",
        PolicyDocument=json.dumps(_task_role_policy(BUCKET)),
    )

    ec2 = client("ec2")
    vpc_id = ec2.create_vpc(CidrBlock=VPC_CIDR)["Vpc"]["VpcId"]
    subnet_id = ec2.create_subnet(
        VpcId=vpc_id, CidrBlock=SUBNET_CIDR, AvailabilityZone=f"{REGION}a"
    )["Subnet"]["SubnetId"]
    group_id = ec2.create_security_group(
        GroupName=NAME_TAG, Description="covalent-ecs sandbox tasks: egress only", VpcId=vpc_id
    )["GroupId"]
    gateway_id = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=gateway_id, VpcId=vpc_id)
    route_table_id = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    ec2.create_route(
        RouteTableId=route_table_id, DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway_id
    )
    ec2.associate_route_table(RouteTableId=route_table_id, SubnetId=subnet_id)
    ec2.create_tags(
        Resources=[vpc_id, subnet_id, group_id, gateway_id, route_table_id],
        Tags=[{"Key": "Name", "Value": NAME_TAG}],
    )

    ecr = client("ecr")
    ecr.create_repository(repositoryName=ECR_REPOSITORY)
    manifest = runner_image_manifest()
    ecr.put_image(
        repositoryName=ECR_REPOSITORY,
        imageManifest=manifest,
        imageTag=contract.runner_image_tag(),
        imageDigest=manifest_digest(manifest),
    )

    return {
        "credentials": write_credentials_file(state_dir),
        "profile": PROFILE,
        "region": REGION,
        "s3_bucket_name": BUCKET,
        "ecr_repo_name": ECR_REPOSITORY,
        "ecs_cluster_name": CLUSTER,
        "ecs_task_family_name": TASK_FAMILY,
        "ecs_task_execution_role_name": EXECUTION_ROLE,
        "ecs_task_role_name": TASK_ROLE,
        "ecs_task_subnet_id": subnet_id,
        "ecs_task_security_group_id": group_id,
        "ecs_task_log_group_name": LOG_GROUP,
        "endpoint_url": endpoint_url,
    }
