"""The ARNs of the ``secrets`` key: which IAM resource and action each needs, and which
SSM parameter it names. Pure; shared by doctor and the sandbox's agent.

ECS's ``valueFrom`` forms (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/secrets-envvar.html):

* ``arn:aws:secretsmanager:<region>:<account>:secret:<name>[:<json-key>:<stage>:<version-id>]``
* ``arn:aws:ssm:<region>:<account>:parameter/<name>``
"""

from __future__ import annotations

# A Secrets Manager ARN has seven colon-separated parts; more are the JSON-key suffix.
_SECRET_ARN_PARTS = 7


def secret_resource(value_from: str) -> tuple[str, str, str]:
    """``(resource ARN, the action ECS needs on it, its region)`` of a ``secrets`` value.

    IAM's resource for a Secrets Manager reference is the secret's own ARN, without the
    JSON-key suffix.
    """
    parts = value_from.split(":")
    if parts[2] == "secretsmanager":
        return ":".join(parts[:_SECRET_ARN_PARTS]), "secretsmanager:GetSecretValue", parts[3]
    return value_from, "ssm:GetParameters", parts[3]


def secret_suffix(value_from: str) -> tuple[str, str, str]:
    """``(json key, version stage, version id)`` of a Secrets Manager reference ('' if unset)."""
    extra = value_from.split(":")[_SECRET_ARN_PARTS:]
    json_key, stage, version_id = (extra + ["", "", ""])[:3]
    return json_key, stage, version_id


def parameter_names(arn: str) -> list[str]:
    """The parameter an SSM ARN names: ``parameter/a/b`` is ``/a/b``; a top-level
    ``parameter/a`` may be ``a`` or ``/a``."""
    rest = arn.split(":parameter/", 1)[1]
    return [f"/{rest}"] if "/" in rest else [rest, f"/{rest}"]
