"""Stage and read objects as the client and the runner sign them (signing.py).

Shared by tests that run the runner without the executor (tests/runner,
tests/integration/test_sandbox.py); importable because pytest puts tests/ (tests/
conftest.py's folder) on sys.path.
"""

from __future__ import annotations

from typing import Any

import cloudpickle

from covalent_ecs_runtime import contract, signing


def put_signed(
    s3: Any, bucket: str, key: str, body: bytes, signing_key: signing.SigningKey | None
) -> None:
    """Stage ``body`` as the client stages a payload (``signing_key`` None: unsigned)."""
    metadata = {}
    if signing_key is not None:
        mac = signing_key.mac(signing.PURPOSE_PAYLOAD, key)
        mac.update(body)
        metadata = contract.object_metadata(mac.hexdigest())
    s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata)


def run_environment(signing_key: signing.SigningKey, bucket_owner: str) -> dict[str, str]:
    """What the client adds to a task's environment for the runner (launch.py)."""
    return {
        contract.ENV_BUCKET_OWNER: bucket_owner,
        contract.ENV_SIGNING_SECRET: signing_key.env_value(),
    }


def read_verified(s3: Any, bucket: str, key: str, signing_key: signing.SigningKey) -> Any:
    """The result envelope at ``key``, once its MAC verified as the client checks it."""
    response = s3.get_object(Bucket=bucket, Key=key)
    body = response["Body"].read()
    mac = signing_key.mac(signing.PURPOSE_RESULT, key)
    mac.update(body)
    assert response["Metadata"][contract.META_FORMAT] == str(contract.ENVELOPE_FORMAT)
    assert mac.matches(response["Metadata"][contract.META_MAC])
    return cloudpickle.loads(body)
