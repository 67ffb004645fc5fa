"""doctor's pure rules: IAM policy reading, the route to ECR, security-group egress."""

from __future__ import annotations

import pytest

from covalent_ecs_executor.setup import iampolicy
from covalent_ecs_executor.setup.doctor_rules import allows_outbound_https, ecr_route

BUCKET_OBJECTS = "arn:aws:s3:::b/covalent-ecs/*"


def policy(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_allow_matches_wildcards_in_actions_and_resources():
    document = policy({"Effect": "Allow", "Action": "s3:Get*", "Resource": BUCKET_OBJECTS})
    assert iampolicy.allows([document], "s3:GetObject", "arn:aws:s3:::b/covalent-ecs/x")
    assert iampolicy.allows([document], "S3:getobject", "arn:aws:s3:::b/covalent-ecs/x")
    assert not iampolicy.allows([document], "s3:PutObject", "arn:aws:s3:::b/covalent-ecs/x")
    assert not iampolicy.allows([document], "s3:GetObject", "arn:aws:s3:::b/elsewhere/x")


def test_an_unconditional_deny_wins_and_a_conditional_one_is_not_evaluated():
    allow = policy({"Effect": "Allow", "Action": "*", "Resource": "*"})
    deny = policy({"Effect": "Deny", "Action": "ecr:*", "Resource": "*"})
    conditional = policy(
        {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    )
    assert not iampolicy.allows([allow, deny], "ecr:BatchGetImage")
    assert iampolicy.allows([allow, conditional], "ecr:BatchGetImage")


def test_not_action_and_not_resource():
    document = policy({"Effect": "Allow", "NotAction": "iam:*", "NotResource": "arn:aws:s3:::secret/*"})
    assert iampolicy.allows([document], "s3:GetObject", "arn:aws:s3:::b/k")
    assert not iampolicy.allows([document], "iam:PassRole", "arn:aws:iam::1:role/r")
    assert not iampolicy.allows([document], "s3:GetObject", "arn:aws:s3:::secret/k")


def test_the_aws_managed_execution_policy_is_known_and_documents_parse_from_text():
    managed = iampolicy.aws_managed_policy(
        "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
    )
    assert managed is not None and iampolicy.allows([managed], "ecr:BatchGetImage", "arn:x")
    assert iampolicy.aws_managed_policy("arn:aws:iam::123456789012:policy/AmazonECSTaskExecutionRolePolicy") is None
    assert iampolicy.as_document("%7B%22Statement%22%3A%5B%5D%7D") == {"Statement": []}


def test_trust_needs_the_service_principal_and_assume_role():
    trust = policy({"Effect": "Allow", "Principal": {"Service": ["ecs-tasks.amazonaws.com"]}, "Action": "sts:AssumeRole"})
    assert iampolicy.trusts_service(trust, "ecs-tasks.amazonaws.com")
    ec2 = policy({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"})
    assert not iampolicy.trusts_service(ec2, "ecs-tasks.amazonaws.com")
    tag_only = policy({"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:TagSession"})
    assert not iampolicy.trusts_service(tag_only, "ecs-tasks.amazonaws.com")


def table(routes, *, subnet=None, main=False, table_id="rtb-1"):
    associations = [{"Main": True}] if main else [{"Main": False, "SubnetId": subnet}]
    return {"RouteTableId": table_id, "Associations": associations, "Routes": routes}


LOCAL = {"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local", "State": "active"}
IGW = {"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-1", "State": "active"}
NAT = {"DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": "nat-1", "State": "active"}
ENDPOINTS = [{"ServiceName": f"com.amazonaws.us-east-1.{s}", "State": "available"} for s in ("ecr.api", "ecr.dkr", "s3", "logs")]


@pytest.mark.parametrize(
    ("tables", "endpoints", "public_ip", "status", "words"),
    [
        ([table([LOCAL, IGW], subnet="subnet-a")], [], True, "ok", "igw-1"),
        ([table([LOCAL, IGW], subnet="subnet-a")], [], False, "fail", "assign_public_ip is false"),
        ([table([LOCAL, NAT], subnet="subnet-a")], [], False, "ok", "NAT gateway nat-1"),
        ([table([LOCAL], subnet="subnet-a")], ENDPOINTS, False, "ok", "endpoints"),
        ([table([LOCAL], subnet="subnet-a")], ENDPOINTS[:2], False, "fail", "s3, logs"),
        ([table([LOCAL, {**IGW, "State": "blackhole"}], subnet="subnet-a")], [], True, "fail", "no route"),
        # No table of its own: the VPC's main table decides.
        ([table([LOCAL, IGW], main=True), table([LOCAL], subnet="subnet-b")], [], True, "ok", "igw-1"),
        ([table([LOCAL, IGW], main=True, table_id="rtb-main"), table([LOCAL], subnet="subnet-a")], [], True, "fail", "rtb-1"),
    ],
)
def test_route_to_ecr(tables, endpoints, public_ip, status, words):
    outcome = ecr_route(
        tables, endpoints, subnet_id="subnet-a", region="us-east-1", assign_public_ip=public_ip
    )
    found, detail, fix = outcome.status, outcome.detail, outcome.fix
    assert found == status and words in detail + fix
    assert (fix != "") == (status == "fail")


def test_outbound_https_needs_an_egress_rule_covering_443():
    assert allows_outbound_https([{"IpProtocol": "-1"}])
    assert allows_outbound_https([{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443}])
    assert not allows_outbound_https([{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80}])
    assert not allows_outbound_https([])


def test_every_configured_subnet_is_checked_and_must_share_a_vpc():
    from covalent_ecs_executor.setup.doctor_rules import judge_subnets

    a = {"SubnetId": "subnet-0000000a", "VpcId": "vpc-1", "AvailabilityZone": "us-east-1a"}
    b = {"SubnetId": "subnet-0000000b", "VpcId": "vpc-1", "AvailabilityZone": "us-east-1b"}
    other = {"SubnetId": "subnet-0000000c", "VpcId": "vpc-2", "AvailabilityZone": "us-east-1c"}
    ok = judge_subnets([a, b], ["subnet-0000000a", "subnet-0000000b"], "us-east-1")
    assert ok.status == "ok" and "2 zones: us-east-1a, us-east-1b" in ok.detail
    assert ok.facts == {"vpc_id": "vpc-1"}
    missing = judge_subnets([a], ["subnet-0000000a", "subnet-0000000d"], "us-east-1")
    assert missing.status == "fail" and "subnet-0000000d does not exist" in missing.detail
    split = judge_subnets([a, other], ["subnet-0000000a", "subnet-0000000c"], "us-east-1")
    assert split.status == "fail" and "2 VPCs" in split.detail


def test_security_groups_add_up_and_must_be_in_the_subnets_vpc():
    from covalent_ecs_executor.setup.doctor_rules import judge_security_groups

    closed = {"GroupId": "sg-0000000a", "VpcId": "vpc-1", "IpPermissionsEgress": []}
    https = {"GroupId": "sg-0000000b", "VpcId": "vpc-1",
             "IpPermissionsEgress": [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443}]}
    assert judge_security_groups([closed, https], ["sg-0000000a", "sg-0000000b"], "vpc-1", "r").status == "ok"
    assert judge_security_groups([closed], ["sg-0000000a"], "vpc-1", "r").status == "fail"
    wrong_vpc = judge_security_groups([https], ["sg-0000000b"], "vpc-9", "r")
    assert wrong_vpc.status == "fail" and "is in vpc-1" in wrong_vpc.detail
