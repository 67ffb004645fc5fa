"""The MAC helpers both sides use (runtime_image/signing.py): pure, no AWS."""

import io
import pickle

import cloudpickle
import pytest

from covalent_ecs_runtime import signing

KEY = signing.SigningKey(bytes(range(32)))
OBJECT_KEY = "covalent-ecs/d1/0-tok/result.pkl"


def mac_of(data: bytes, *, key=KEY, purpose=signing.PURPOSE_RESULT, object_key=OBJECT_KEY) -> str:
    mac = key.mac(purpose, object_key)
    mac.update(data)
    return mac.hexdigest()


def fresh(*, key=KEY, purpose=signing.PURPOSE_RESULT, object_key=OBJECT_KEY):
    return key.mac(purpose, object_key)


def test_the_same_bytes_under_the_same_key_verify_even_when_fed_in_pieces():
    mac = fresh()
    for piece in (b"hello ", b"", b"world"):
        mac.update(piece)
    assert mac.matches(mac_of(b"hello world"))
    assert mac.matches(mac_of(b"hello world").upper())  # hex case is not significant


@pytest.mark.parametrize(
    "other",
    [
        {"data": b"hello worle"},  # one byte changed
        {"data": b"hello world!"},  # one byte added
        {"key": signing.SigningKey(bytes(32))},  # another run's key
        {"purpose": signing.PURPOSE_PAYLOAD},  # a payload copied over the result
        {"object_key": "covalent-ecs/d1/0-other/result.pkl"},  # another attempt's result
    ],
)
def test_a_mac_does_not_verify_other_bytes_keys_roles_or_locations(other):
    data = other.pop("data", b"hello world")
    mac = fresh()
    mac.update(b"hello world")
    assert not mac.matches(mac_of(data, **other))


@pytest.mark.parametrize("claimed", [None, "", "00" * 32, "not hex", "é" * 64])
def test_a_missing_or_wrong_claim_never_verifies(claimed):
    mac = fresh()
    mac.update(b"x")
    assert not mac.matches(claimed)


def test_the_mac_writer_signs_exactly_the_bytes_cloudpickle_writes():
    value = {"numbers": list(range(1000)), "blob": bytes(200_000)}
    sink = io.BytesIO()
    writer = signing.MacWriter(sink, fresh())
    cloudpickle.dump(value, writer)
    assert sink.getvalue() == cloudpickle.dumps(value)
    assert writer.mac.matches(mac_of(sink.getvalue()))


def test_new_keys_are_256_random_bits():
    first, second = signing.SigningKey.new(), signing.SigningKey.new()
    assert len(bytes.fromhex(first.env_value())) == signing.KEY_BYTES == 32
    assert first.env_value() != second.env_value()


def test_the_env_form_round_trips_and_a_bad_one_is_refused_without_echoing_it():
    assert signing.SigningKey.from_env_value(KEY.env_value()).env_value() == KEY.env_value()
    with pytest.raises(ValueError) as err:
        signing.SigningKey.from_env_value("zz-secret-looking-text")
    assert "zz-secret-looking-text" not in str(err.value)
    with pytest.raises(ValueError):
        signing.SigningKey.from_env_value("ab" * 16)  # 128 bits: too short


def test_a_key_never_shows_in_repr_str_or_a_pickle():
    secret_hex = KEY.env_value()
    assert secret_hex not in repr(KEY) and secret_hex not in str(KEY)
    assert secret_hex not in f"{KEY!r} {KEY}" and secret_hex not in repr({"key": KEY})
    for dumps in (pickle.dumps, cloudpickle.dumps):
        with pytest.raises(TypeError, match="never pickled"):
            dumps({"key": KEY})
