"""A container definition's ``secrets``, resolved as ECS does when a task starts.

ECS reads each ``valueFrom`` with the task execution role and puts the value in the
container's environment; the client never sees it, and it is in no RunTask request.
The sandbox's agent does the same from moto's Secrets Manager and SSM Parameter Store
backends (in-process reads, so nothing is counted as a call). IAM is not enforced.

``valueFrom`` forms: see secretrefs.py (a SecureString parameter is decrypted). A
secret that cannot be read stops the task before it runs, with ECS's words.
"""

from __future__ import annotations

import json
from typing import Any

from moto.backends import get_backend

from ..secretrefs import parameter_names, secret_resource, secret_suffix

_PREFIX = "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed"


class SecretUnavailable(Exception):
    """A container secret could not be read; the message is ECS's stopped reason."""


def container_secrets(definition: dict[str, Any]) -> dict[str, str]:
    """``{name: value}`` for the container definition's ``secrets``."""
    return {item["name"]: _value(item["valueFrom"]) for item in definition.get("secrets") or []}


def secret_names(definition: dict[str, Any]) -> list[str]:
    return [item["name"] for item in definition.get("secrets") or []]


def _value(value_from: str) -> str:
    parts = value_from.split(":")
    if len(parts) < 6 or parts[2] not in ("secretsmanager", "ssm"):
        raise SecretUnavailable(f"{_PREFIX}: invalid secret reference {value_from}")
    service, region, account = parts[2], parts[3], parts[4]
    if service == "ssm":
        return _parameter(get_backend("ssm")[account][region], value_from)
    return _secret(get_backend("secretsmanager")[account][region], value_from)


def _parameter(backend: Any, arn: str) -> str:
    for name in parameter_names(arn):
        parameter = backend.get_parameter(name)
        if parameter is not None:
            return str(parameter.decrypt(parameter.value))
    raise SecretUnavailable(
        f"{_PREFIX}: unable to retrieve secrets from ssm: service call has been retried 1 "
        f"time(s): InvalidParameters: {arn}"
    )


def _secret(backend: Any, value_from: str) -> str:
    arn = secret_resource(value_from)[0]
    json_key, stage, version_id = secret_suffix(value_from)
    try:
        answer = backend.get_secret_value(arn, version_id or None, stage or None)
    except Exception as err:  # noqa: BLE001 - moto's not-found and deleted-secret errors
        raise SecretUnavailable(
            f"{_PREFIX}: unable to retrieve secret from asm: service call has been retried 1 "
            f"time(s): failed to fetch secret {arn} from secrets manager: {type(err).__name__}: "
            "Secrets Manager can't find the specified secret."
        ) from err
    value = str(answer.get("SecretString", ""))
    if not json_key:
        return value
    try:
        return str(json.loads(value)[json_key])
    except (ValueError, KeyError, TypeError) as err:
        raise SecretUnavailable(
            f"{_PREFIX}: unable to retrieve secret from asm: retrieved secret from Secrets "
            f"Manager did not contain json key {json_key}"
        ) from err
