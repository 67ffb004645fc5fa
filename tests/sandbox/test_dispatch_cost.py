"""The sandbox's per-request work that does not grow with load or with its age."""

from __future__ import annotations

import json
import threading

import pytest
from fake_clock import FakeClock
from moto import backends
from moto.core import serialize
from moto.moto_server.werkzeug_app import create_backend_app
from werkzeug.test import Client

from covalent_ecs_executor.sandbox import moto_patches
from covalent_ecs_executor.sandbox.server import MotoDispatcher


def _signed_for(service: str) -> dict[str, str]:
    # moto names a request's backend from its SigV4 credential scope.
    return {
        "Authorization": f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261201/us-east-1/{service}/aws4_request, "
        "SignedHeaders=host, Signature=0"
    }


def test_a_hosts_backend_is_looked_up_once_however_many_requests_name_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scans = []
    real_scan = backends.list_of_moto_modules

    def counted_scan() -> object:
        scans.append(threading.get_ident())
        return real_scan()

    monkeypatch.setattr(backends, "list_of_moto_modules", counted_scan)
    client = Client(MotoDispatcher(create_backend_app))
    for _ in range(20):
        assert client.get("/", headers=_signed_for("s3")).status_code == 200  # ListBuckets
        answer = client.post(
            "/",
            headers={**_signed_for("ecs"), "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.ListClusters",
                     "Content-Type": "application/x-amz-json-1.1"},
            data="{}",
        )  # fmt: skip
        assert answer.status_code == 200
        assert "clusterArns" in json.loads(answer.get_data())
    # One scan per host the first time it is seen (s3's and ecs's); none after.
    assert len(scans) == 2


def test_stale_run_task_tokens_are_dropped_oldest_first_and_fresh_ones_kept() -> None:
    clock = FakeClock()
    tokens = moto_patches._ClientTokens(clock)
    for i in range(5):
        key = ("123456789012", "us-east-1", f"old-{i}")
        with tokens.lock_for(key):
            tokens.put(key, [f"task-{i}"])
    clock.now += moto_patches.CLIENT_TOKEN_TTL_S / 2
    fresh = ("123456789012", "us-east-1", "fresh")
    with tokens.lock_for(fresh):
        tokens.put(fresh, ["task-fresh"])
    clock.now += moto_patches.CLIENT_TOKEN_TTL_S / 2 + 1  # the old ones are now past the TTL
    probe = ("123456789012", "us-east-1", "probe")
    tokens.lock_for(probe)
    assert [tokens.get(("123456789012", "us-east-1", f"old-{i}")) for i in range(5)] == [None] * 5
    assert tokens.get(fresh) == ["task-fresh"]


def test_the_serializers_attribute_lookup_is_worked_out_once_per_member(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    moto_patches.install(None)
    lookups = []
    real_has_alias = serialize.ExplicitAlias.has_alias

    def counted(self: serialize.ExplicitAlias, key: str) -> bool:
        lookups.append(key)
        return real_has_alias(self, key)

    monkeypatch.setattr(serialize.ExplicitAlias, "has_alias", counted)
    client = Client(MotoDispatcher(create_backend_app))
    headers = {**_signed_for("ecs"), "Content-Type": "application/x-amz-json-1.1"}
    target = "AmazonEC2ContainerServiceV20141113."
    name = "serializer-cost"
    assert client.post("/", headers={**headers, "X-Amz-Target": target + "CreateCluster"},
                       data=json.dumps({"clusterName": name})).status_code == 200  # fmt: skip

    def describe() -> dict[str, object]:
        answer = client.post("/", headers={**headers, "X-Amz-Target": target + "DescribeClusters"},
                             data=json.dumps({"clusters": [name]}))  # fmt: skip
        assert answer.status_code == 200
        return json.loads(answer.get_data())

    lookups.clear()
    first = describe()
    worked_out = len(lookups)
    second = describe()
    assert first == second and first["clusters"][0]["clusterName"] == name  # type: ignore[index]
    assert worked_out > 0 and len(lookups) == worked_out  # the second answer looked nothing up again
