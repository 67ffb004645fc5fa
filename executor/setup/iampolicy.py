"""Read IAM policy documents: does a role trust a service, do its policies allow an action?

``covalent-ecs doctor`` inspects the roles' own policies (IAM's policy simulator is not
emulated by moto, and a least-privilege client may not be allowed to call it). This is
a deliberately small reading of the IAM evaluation logic, enough to catch set-up
mistakes, not a replacement for it:

* identity policies only: permission boundaries, SCPs and session policies are not seen;
* ``Action``/``NotAction`` and ``Resource``/``NotResource`` wildcards (``*``, ``?``) are
  matched; policy variables are not expanded;
* ``Condition`` blocks are not evaluated: a conditional Allow counts as allowing and a
  conditional Deny as not denying (doctor tells what *can* work).

Pure: documents in, answers out.
"""

from __future__ import annotations

import fnmatch
import json
import urllib.parse
from typing import Any

# AWS managed policies are not stored in moto (unless MOTO_IAM_LOAD_MANAGED_POLICIES),
# and reading them costs calls: their documents, as AWS publishes them.
# https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AmazonECSTaskExecutionRolePolicy.html
AWS_MANAGED_POLICIES: dict[str, dict[str, Any]] = {
    "AmazonECSTaskExecutionRolePolicy": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "ecr:GetAuthorizationToken",
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchGetImage",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                ],
                "Resource": "*",
            }
        ],
    }
}


# What the client identity calls for each `covalent-ecs` command that reads the tasks'
# records and ECS state (action, resource; {names} filled by ``command_needs``). The
# stack's ClientPolicy grants them (tests/unit/test_infra_template.py checks it).
_TASK = "arn:{partition}:ecs:{region}:{account}:task/{cluster}/*"
_RECORDS = "arn:{partition}:s3:::{bucket}/covalent-ecs/*"
_BUCKET = "arn:{partition}:s3:::{bucket}"
COMMAND_NEEDS: dict[str, list[tuple[str, str]]] = {
    "report": [
        ("s3:ListBucket", _BUCKET),
        ("s3:GetObject", _RECORDS),
        ("ecs:DescribeTasks", _TASK),
    ],
    "ps": [("ecs:ListTasks", "*"), ("ecs:DescribeTasks", _TASK)],
    "stop": [("ecs:ListTasks", "*"), ("ecs:DescribeTasks", _TASK), ("ecs:StopTask", _TASK)],
    "logs": [
        ("s3:ListBucket", _BUCKET),
        ("s3:GetObject", _RECORDS),
        ("ecs:ListTasks", "*"),
        ("ecs:DescribeTasks", _TASK),
        ("logs:GetLogEvents", "arn:{partition}:logs:{region}:{account}:log-group:{log_group}:*"),
    ],
}


# What the executor itself calls from the client while running tasks (staging.py,
# records.py, taskdefs.py, launch.py, poller.py, livetasks.py, tasklogs.py, aws.py);
# the ClientPolicy grants them too. ``{family}`` is a task-definition family the
# executor would register; the roles are the ARNs it passes to ECS.
EXECUTOR_NEEDS: list[tuple[str, str]] = [
    ("sts:GetCallerIdentity", "*"),
    ("s3:PutObject", _RECORDS),
    ("s3:GetObject", _RECORDS),
    ("s3:DeleteObject", _RECORDS),
    ("s3:ListBucket", _BUCKET),
    ("ecs:DescribeTaskDefinition", "*"),
    ("ecs:RegisterTaskDefinition", "*"),
    ("ecs:RunTask", "arn:{partition}:ecs:{region}:{account}:task-definition/{family}:1"),
    ("ecs:TagResource", _TASK),
    ("ecs:DescribeTasks", _TASK),
    ("ecs:StopTask", _TASK),
    ("iam:PassRole", "{execution_role_arn}"),
    ("iam:PassRole", "{task_role_arn}"),
    ("logs:GetLogEvents", "arn:{partition}:logs:{region}:{account}:log-group:{log_group}:*"),
]
# Resolving the runner image's tag to a digest, when the image is in ECR.
ECR_IMAGE_NEED = (
    "ecr:DescribeImages",
    "arn:{partition}:ecr:{ecr_region}:{ecr_account}:repository/{repository}",
)


def command_needs(command: str, **names: str) -> list[tuple[str, str]]:
    """``COMMAND_NEEDS[command]`` with partition, region, account, bucket, cluster and
    log_group filled in."""
    return [(action, resource.format(**names)) for action, resource in COMMAND_NEEDS[command]]


def missing_with_users(
    documents: list[dict[str, Any]], needs: dict[str, list[tuple[str, str]]]
) -> list[str]:
    """Each ``(action, resource)`` of ``needs`` (user -> pairs) that ``documents`` do
    not allow, once, naming every user that needs it, in first-seen order."""
    users: dict[tuple[str, str], list[str]] = {}
    for user, pairs in needs.items():
        for pair in pairs:
            if user not in users.setdefault(pair, []):
                users[pair].append(user)
    return [
        f"{missing_actions([], [pair])[0]} (needed by {', '.join(who)})"
        for pair, who in users.items()
        if not allows(documents, *pair)
    ]


def aws_managed_policy(arn: str) -> dict[str, Any] | None:
    """The document of a known AWS managed policy ARN (``arn:aws:iam::aws:policy/...``)."""
    if ":iam::aws:policy/" not in arn:
        return None
    return AWS_MANAGED_POLICIES.get(arn.rsplit("/", 1)[-1])


def as_document(document: Any) -> dict[str, Any]:
    """A policy document from IAM's answer: a dict, or (URL-encoded) JSON text."""
    if isinstance(document, dict):
        return document
    text = str(document)
    if text.startswith("%7B"):
        text = urllib.parse.unquote(text)
    return dict(json.loads(text))


def _listed(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(item) for item in value]


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = document.get("Statement", [])
    # Skip non-statements: moto's CloudFormation leaves an ``!If [..., AWS::NoValue]``
    # statement in the list as null where AWS drops it.
    return [found] if isinstance(found, dict) else [s for s in found if isinstance(s, dict)]


def _matches(patterns: list[str], value: str, *, ignore_case: bool) -> bool:
    if ignore_case:
        value = value.lower()
        patterns = [pattern.lower() for pattern in patterns]
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


def _applies(statement: dict[str, Any], action: str, resource: str) -> bool:
    if "Action" in statement:
        action_ok = _matches(_listed(statement["Action"]), action, ignore_case=True)
    else:
        action_ok = not _matches(_listed(statement.get("NotAction")), action, ignore_case=True)
    if "Resource" in statement:
        resource_ok = _matches(_listed(statement["Resource"]), resource, ignore_case=False)
    else:
        resource_ok = not _matches(
            _listed(statement.get("NotResource")), resource, ignore_case=False
        )
    return action_ok and resource_ok


def allows(documents: list[dict[str, Any]], action: str, resource: str = "*") -> bool:
    """True when some statement allows ``action`` on ``resource`` and none denies it."""
    allowed = False
    for document in documents:
        for statement in statements(document):
            if not _applies(statement, action, resource):
                continue
            if statement.get("Effect") == "Deny":
                if "Condition" not in statement:
                    return False
            elif statement.get("Effect") == "Allow":
                allowed = True
    return allowed


def missing_actions(documents: list[dict[str, Any]], needs: list[tuple[str, str]]) -> list[str]:
    """The ``(action, resource)`` pairs of ``needs`` that ``documents`` do not allow."""
    return [
        action if resource == "*" else f"{action} on {resource}"
        for action, resource in needs
        if not allows(documents, action, resource)
    ]


def trusts_service(trust_policy: dict[str, Any], service: str) -> bool:
    """True when the trust policy lets ``service`` call sts:AssumeRole."""
    for statement in statements(trust_policy):
        if statement.get("Effect") != "Allow":
            continue
        if not _matches(_listed(statement.get("Action")), "sts:AssumeRole", ignore_case=True):
            continue
        principal = statement.get("Principal", {})
        if principal == "*":
            return True
        if isinstance(principal, dict) and service in _listed(principal.get("Service")):
            return True
    return False
