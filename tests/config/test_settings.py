from __future__ import annotations

import warnings

import pytest
from pydantic import ValidationError

from otpflow.config.settings import (
    InsecureDefaultWarning,
    Settings,
    load_settings,
    overrides_from_mapping,
    overrides_from_names,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("OTPFLOW_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_environment_with_nested_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTPFLOW_REDIS_URL", "redis://r:6379/2")
    monkeypatch.setenv("OTPFLOW_SECRET", "x" * 32)
    monkeypatch.setenv("OTPFLOW_API_KEYS", "acme:k1, beta:k2")
    monkeypatch.setenv("OTPFLOW_PROVIDERS__ZIXFLOW__BASE_URL", "http://sim:9000")
    monkeypatch.setenv("OTPFLOW_PROVIDERS__ZIXFLOW__API_KEY", "zk")
    monkeypatch.setenv("OTPFLOW_ROUTES__SMS", "zixflow, backup")
    monkeypatch.setenv("OTPFLOW_ALLOW_PRIVATE_WEBHOOKS", "true")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        settings = load_settings()
    assert settings.broker_url == "redis://r:6379/2"  # defaults to the Redis URL
    assert settings.api_keys == {"acme": "k1", "beta": "k2"}
    assert settings.providers.zixflow.base_url == "http://sim:9000"
    assert settings.providers.zixflow.api_key.get_secret_value() == "zk"
    assert settings.routes.for_channel("sms") == ["zixflow", "backup"]
    assert settings.routes.for_channel("whatsapp") == ["zixflow"]
    assert settings.routes.for_channel("fax") == []
    assert settings.allow_private_webhooks is True


def test_dotenv_file_is_read(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    Path(".env").write_text("OTPFLOW_PUBLIC_URL=https://otp.example/\n")
    settings = load_settings()
    assert settings.public_url == "https://otp.example"


def test_development_defaults_warn_loudly() -> None:
    with pytest.warns(InsecureDefaultWarning) as caught:
        load_settings()
    messages = " ".join(str(w.message) for w in caught)
    assert "OTPFLOW_SECRET" in messages and "OTPFLOW_API_KEYS" in messages


def test_bad_api_keys_are_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTPFLOW_API_KEYS", "no-colon-here")
    with pytest.raises(ValueError, match="OTPFLOW_API_KEYS"):
        load_settings()


def test_an_empty_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTPFLOW_SECRET", " ")
    with pytest.raises(ValidationError, match="secret"):
        load_settings()


# -- settings written in a framework's configuration (Django, Flask) ------------------------


def test_prefixed_names_nest_merge_and_keep_free_form_keys() -> None:
    providers = {"ZIXFLOW": {"API_KEY": "zx-key"}}
    overrides = overrides_from_names(
        {
            "OTPFLOW_REDIS_URL": "redis://127.0.0.1:6379/3",
            "OTPFLOW_PROVIDERS": providers,
            "OTPFLOW_PROVIDERS__ZIXFLOW__WORKSPACE_ID": "ws-1",
            "OTPFLOW_LIMITS__RECIPIENT_FLOWS": 2,
            "OTPFLOW_API_KEYS": {"Acme": "acme-key"},
            "DEBUG": True,
            "OTPFLOW_": "ignored",
        }
    )
    settings = Settings(**overrides)
    assert settings.redis_url == "redis://127.0.0.1:6379/3"
    assert settings.providers.zixflow.api_key.get_secret_value() == "zx-key"
    assert settings.providers.zixflow.workspace_id == "ws-1"
    assert settings.limits.recipient_flows == 2
    assert settings.api_keys == {"Acme": "acme-key"}  # a workspace name keeps its case
    assert providers == {"ZIXFLOW": {"API_KEY": "zx-key"}}, "the caller's dict is not changed"


def test_a_settings_mapping_takes_field_names_in_any_case() -> None:
    overrides = overrides_from_mapping(
        {"Redis_Url": "redis://127.0.0.1:6379/4", "LIMITS": {"Workspace_RPS": 7}}
    )
    settings = Settings(**overrides)
    assert settings.redis_url == "redis://127.0.0.1:6379/4"
    assert settings.limits.workspace_rps == 7
