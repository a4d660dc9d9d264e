"""Keys derived per purpose: recipients named by an HMAC in Redis, codes never stored."""

from __future__ import annotations

import hashlib

import pytest
import redis

from otpflow.config.settings import Limits
from otpflow.flow import keys
from otpflow.flow.keyring import Keyring, KeyringMismatch
from otpflow.flow.models import FlowRequest
from otpflow.flow.store import FlowStore

from fakes import TEST_KEYRING
from harness import sms_step

NUMBER = "+919876543210"
FLOW = {
    "messages": [sms_step("919876543210", text="Your code is {{code}}")],
    "otp": {"length": 6, "ttl": 60},
}


def test_codes_are_digits_of_their_length_one_per_flow_and_key() -> None:
    code = TEST_KEYRING.code("flow-1", 6)
    assert len(code) == 6 and code.isdigit()
    assert TEST_KEYRING.code("flow-1", 6) == code  # made again when each step is sent
    assert len({TEST_KEYRING.code(f"flow-{n}", 6) for n in range(50)}) > 45
    assert Keyring.from_secret("another-secret-of-at-least-32-bytes").code("flow-1", 6) != code
    assert TEST_KEYRING.code("flow-1", 10).isdigit()


def all_values(client: redis.Redis) -> bytes:
    """Every string and hash value in the database, concatenated."""
    found = b""
    for key in client.scan_iter():
        kind = client.type(key)
        if kind == b"string":
            found += client.get(key) or b""
        elif kind == b"hash":
            found += b" ".join(client.hvals(key))
        elif kind == b"list":
            found += b" ".join(client.lrange(key, 0, -1))
    return found


def test_no_code_is_stored_only_an_hmac_to_check_it(redis_client: redis.Redis) -> None:
    store = FlowStore(redis_client, TEST_KEYRING, ttl_seconds=600)
    flow_id = store.create("ws", FlowRequest.parse(FLOW))
    store.mark_enqueued(flow_id)
    code = TEST_KEYRING.code(flow_id, 6)
    assert code.encode() not in all_values(redis_client)
    assert redis_client.get(keys.code(flow_id)) == TEST_KEYRING.code_check(flow_id, code).encode()
    claim = store.claim(flow_id, 0, 1, 30)
    assert claim.kind == "claimed" and claim.code == code  # what the worker sends
    assert store.verify(flow_id, code, Limits()).kind == "verified"


def test_recipients_are_named_by_a_keyed_hmac_not_a_plain_hash(redis_client: redis.Redis) -> None:
    plain = hashlib.sha256(NUMBER.encode()).hexdigest()[:32]  # enumerable: numbers are few
    names = []
    for keyring in (TEST_KEYRING, Keyring.from_secret("another-secret-of-at-least-32-bytes")):
        redis_client.flushdb()
        store = FlowStore(redis_client, keyring, ttl_seconds=600)
        outcome = store.submit("f1", "ws", FlowRequest.parse(FLOW), {NUMBER: 1}, Limits(), 60)
        assert outcome.kind == "ok"
        names.append(sorted(key.decode() for key in redis_client.scan_iter()))
    for name in names[0] + names[1]:
        assert plain not in name and "9876543210" not in name
    assert names[0] != names[1]


def test_a_process_with_another_secret_says_so_instead_of_a_wrong_code(
    redis_client: redis.Redis,
) -> None:
    stored = FlowStore(redis_client, TEST_KEYRING, ttl_seconds=600)
    flow_id = stored.create("ws", FlowRequest.parse(FLOW))
    stored.mark_enqueued(flow_id)
    other = FlowStore(redis_client, Keyring.from_secret("another-secret-of-at-least-32-bytes"), 600)
    with pytest.raises(KeyringMismatch, match="OTPFLOW_SECRET"):
        other.claim(flow_id, 0, 1, 30)
    with pytest.raises(KeyringMismatch, match="OTPFLOW_SECRET"):
        other.verify(flow_id, "123456", Limits())
