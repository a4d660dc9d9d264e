from __future__ import annotations

import hashlib
import hmac
import time

import pytest

from otpflow.flow.signing import (
    BadToken,
    derive_key,
    dlr_token,
    read_dlr_token,
    verify_webhook_signature,
    webhook_key,
    webhook_secret,
    webhook_signature,
)

SECRET = "signing-tests-secret-at-least-32-bytes"


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
        "f-1." + "9" * 5000 + ".abc",  # no step of ours has 5,000 digits
        dlr_token("other-secret", "zixflow", "f-1", 2),
        dlr_token("s", "messageflow", "f-1", 2),  # minted for another provider
        dlr_token("s", "zixflow", "f-1", 2).replace(".2.", ".3."),  # another step
        dlr_token("s", "zixflow", "f-1", 2)[:-1] + "0",
    ],
)
def test_forged_or_altered_tokens_are_refused(token: str) -> None:
    with pytest.raises(BadToken):
        read_dlr_token("s", "zixflow", token)


def test_purposes_have_keys_of_their_own() -> None:
    assert derive_key(SECRET, "dlr-token") != derive_key(SECRET, "webhook-signing")
    assert SECRET.encode() not in (
        derive_key(SECRET, "dlr-token"),
        webhook_key(webhook_secret(SECRET, "w")),
    )


def test_a_webhook_secret_cannot_mint_dlr_tokens() -> None:
    # a receiver holds its workspace's webhook secret; a token made with it (as the secret, or
    # as the raw key, the way tokens were made from the one shared secret) is refused
    whsecret = webhook_secret(SECRET, "acme")
    forged_with_secret = dlr_token(whsecret, "zixflow", "f-1", 0)
    key = webhook_key(whsecret)
    mac = hmac.new(key, b"dlr:zixflow:f-1:0", hashlib.sha256).hexdigest()[:40]
    for forged in (forged_with_secret, f"f-1.0.{mac}"):
        with pytest.raises(BadToken):
            read_dlr_token(SECRET, "zixflow", forged)


def test_each_workspace_has_its_own_webhook_secret() -> None:
    acme, other = webhook_secret(SECRET, "acme"), webhook_secret(SECRET, "other")
    assert acme.startswith("whsec_") and acme != other
    assert webhook_secret(SECRET, "acme") == acme, "derived, so every process agrees"
    assert webhook_secret("another-" + SECRET, "acme") != acme
    assert len(webhook_key(acme)) == 32


def test_tokens_made_with_a_previous_secret_are_read_during_rotation() -> None:
    old, new = "old-" + SECRET, "new-" + SECRET
    token = dlr_token(old, "zixflow", "f-1", 1)
    assert read_dlr_token([new, old], "zixflow", token) == ("f-1", 1)
    assert read_dlr_token([new, old], "zixflow", dlr_token(new, "zixflow", "f-1", 1))
    with pytest.raises(BadToken):
        read_dlr_token(new, "zixflow", token)


def test_webhook_signature_format_and_check() -> None:
    whsecret = webhook_secret(SECRET, "acme")
    now = 1700000000
    header = webhook_signature(whsecret, now, b'{"a":1}')
    t, v1 = header.split(",")
    assert t == "t=1700000000" and v1.startswith("v1=") and len(v1) == 3 + 64
    assert verify_webhook_signature(whsecret, header, b'{"a":1}', now=now)
    assert not verify_webhook_signature(whsecret, header, b'{"a":2}', now=now)
    assert not verify_webhook_signature(webhook_secret(SECRET, "x"), header, b'{"a":1}', now=now)
    assert not verify_webhook_signature(whsecret, "garbage", b'{"a":1}', now=now)


def test_a_signature_older_than_five_minutes_is_refused() -> None:
    # behaviour change: the reference check once accepted any age, so a captured webhook
    # could be replayed at will
    whsecret = webhook_secret(SECRET, "acme")
    now = int(time.time())
    assert verify_webhook_signature(whsecret, webhook_signature(whsecret, now - 299, b"{}"), b"{}")
    assert not verify_webhook_signature(
        whsecret, webhook_signature(whsecret, now - 301, b"{}"), b"{}"
    )


@pytest.mark.usefixtures("clean_env")
def test_a_secret_shorter_than_32_bytes_is_refused_unless_it_is_the_development_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import ValidationError

    from otpflow.config.settings import DEV_SECRET, Settings

    with pytest.raises(ValidationError, match="at least 32 bytes"):
        Settings(secret="x" * 31)
    assert Settings(secret="x" * 32).secret.get_secret_value() == "x" * 32
    assert Settings(secret=DEV_SECRET).uses_dev_secret
    monkeypatch.setenv("OTPFLOW_SECRET", "short")
    with pytest.raises(ValidationError, match="secret"):
        Settings()


@pytest.mark.usefixtures("clean_env")
def test_previous_secrets_are_read_for_rotation(monkeypatch: pytest.MonkeyPatch) -> None:
    from otpflow.config.settings import Settings

    monkeypatch.setenv("OTPFLOW_SECRET", "new-" + SECRET)
    monkeypatch.setenv("OTPFLOW_PREVIOUS_SECRETS", f"old-{SECRET}, older-{SECRET}")
    settings = Settings()
    assert settings.verification_secrets == ["new-" + SECRET, "old-" + SECRET, "older-" + SECRET]
    token = dlr_token("older-" + SECRET, "zixflow", "f-1", 0)
    assert read_dlr_token(settings.verification_secrets, "zixflow", token) == ("f-1", 0)


@pytest.mark.usefixtures("clean_env")
def test_the_cli_prints_a_workspace_webhook_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from otpflow.cli import main as cli

    monkeypatch.setenv("OTPFLOW_SECRET", SECRET)
    assert cli.main(["webhook-secret", "--workspace", "acme"]) == 0
    assert capsys.readouterr().out == webhook_secret(SECRET, "acme") + "\n"
