from __future__ import annotations

import pytest

from otpflow.worker.signing import (
    BadToken,
    dlr_token,
    read_dlr_token,
    verify_webhook_signature,
    webhook_signature,
)


def test_dlr_token_round_trip() -> None:
    token = dlr_token("s", "zixflow", "f-1", 2)
    assert read_dlr_token("s", "zixflow", token) == ("f-1", 2)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "f-1",
        "f-1.2",
        "f-1.x.abc",
        dlr_token("other-secret", "zixflow", "f-1", 2),
        dlr_token("s", "messageflow", "f-1", 2),  # minted for another provider
        dlr_token("s", "zixflow", "f-1", 2).replace(".2.", ".3."),  # another step
        dlr_token("s", "zixflow", "f-1", 2)[:-1] + "0",
    ],
)
def test_forged_or_altered_tokens_are_refused(token: str) -> None:
    with pytest.raises(BadToken):
        read_dlr_token("s", "zixflow", token)


def test_webhook_signature_format_and_check() -> None:
    header = webhook_signature("s", 1700000000, b'{"a":1}')
    t, v1 = header.split(",")
    assert t == "t=1700000000" and v1.startswith("v1=") and len(v1) == 3 + 64
    assert verify_webhook_signature("s", header, b'{"a":1}')
    assert not verify_webhook_signature("s", header, b'{"a":2}')
    assert not verify_webhook_signature("x", header, b'{"a":1}')
    assert not verify_webhook_signature("s", "garbage", b'{"a":1}')
