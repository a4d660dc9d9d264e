"""docker-compose.yml is valid, has every service of the stack, and holds the choices that matter.

Read through `docker-compose config`, which resolves anchors, merges and ${VAR:-default} the way
Compose will, and needs no Docker engine. It runs with no OTPFLOW_* variable and an empty env
file, so what is checked are the compose file's own defaults.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from otpflow.config.celery import ALL_QUEUES
from otpflow.config.settings import DEV_SECRET, Settings

from harness import env_fields

ROOT = Path(__file__).resolve().parents[1]
OTPFLOW_SERVICES = {"api", "worker", "worker-webhooks", "flower"}
WORKERS = {"worker", "worker-webhooks"}
SERVICES = OTPFLOW_SERVICES | {"redis", "simulator"}


def compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is not installed (.ci/run installs it)")
        pytest.skip("docker-compose is not installed")
    return found


def run_compose(tmp_path: Path, *args: str, env_file: str = "") -> str:
    """docker-compose with no OTPFLOW_*/FLOWER_* variable but those of `env_file`."""
    path = tmp_path / "compose.env"
    path.write_text(env_file)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTPFLOW_", "FLOWER_"))}
    return subprocess.run(
        [compose(), "--env-file", str(path), *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    tmp_path = tmp_path_factory.mktemp("compose")
    run_compose(tmp_path, "config", "-q")
    config = yaml.safe_load(run_compose(tmp_path, "config"))
    return dict(config["services"])


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def published(port: Any) -> tuple[str, str]:
    """(host address, host port) of a published port, in either form compose prints."""
    if isinstance(port, dict):
        return str(port.get("host_ip", "0.0.0.0")), str(port["published"])
    parts = str(port).split("/")[0].split(":")
    return (parts[0], parts[1]) if len(parts) == 3 else ("0.0.0.0", parts[0])


def test_every_service_of_the_stack(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == SERVICES


def test_redis_keeps_everything(services: dict[str, dict[str, Any]]) -> None:
    redis = services["redis"]
    command = redis["command"]
    assert option(command, "--appendonly") == "yes"
    assert option(command, "--maxmemory-policy") == "noeviction"
    assert any(volume.endswith(":/data:rw") for volume in redis["volumes"])
    assert "ports" not in redis, "Redis stays inside the stack"
    # a Redis image in protected mode refuses the other containers (Debian's does)
    assert option(command, "--protected-mode") == "no"


def test_the_image_has_what_the_simulator_service_runs(services: dict[str, dict[str, Any]]) -> None:
    """The simulator service runs SMTP too, which needs the `simulator` extra (aiosmtpd)."""
    assert "--smtp-port" in services["simulator"]["command"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'pip install ".[simulator]"' in dockerfile
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(dependency.startswith("aiosmtpd") for dependency in extras["simulator"])


def test_every_otpflow_service_gets_every_setting(services: dict[str, dict[str, Any]]) -> None:
    shared = {
        name: value
        for name, value in services["api"]["environment"].items()
        if name.startswith("OTPFLOW_")
    }
    assert set(shared) == set(env_fields(Settings))
    for name in OTPFLOW_SERVICES:
        environment = services[name]["environment"]
        assert {k: v for k, v in environment.items() if k.startswith("OTPFLOW_")} == shared, name


@pytest.mark.usefixtures("clean_env")
def test_the_compose_defaults_make_valid_settings_for_the_stack(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    own = Settings(_env_file=None)  # type: ignore[call-arg]
    for name, value in services["api"]["environment"].items():
        if name.startswith("OTPFLOW_"):
            monkeypatch.setenv(name, "" if value is None else str(value))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.redis_url == settings.broker_url == "redis://redis:6379/0"
    assert settings.public_url == "http://api:8000"
    assert settings.providers.zixflow.base_url == "http://simulator:9000"
    assert settings.providers.smtp.host == "simulator"
    # the defaults are the public development values, so every process warns about them
    assert settings.uses_dev_secret and settings.uses_dev_api_keys
    # everything else is OTPflow's own default, copied: a default changed in
    # config/settings.py must not be overridden under Docker by a stale copy here
    stack_specific = {"redis_url", "broker_url", "public_url", "providers"}
    assert settings.model_dump(exclude=stack_specific) == own.model_dump(exclude=stack_specific)
    stack_credentials = {"base_url", "api_key", "workspace_id", "application_key"}
    stack_credentials |= {"authorization", "auth", "host", "port"}
    for name, provider in settings.providers:
        assert provider.model_dump(exclude=stack_credentials) == getattr(
            own.providers, name
        ).model_dump(exclude=stack_credentials), name


def test_an_empty_variable_stays_empty_but_secrets_fall_back(tmp_path: Path) -> None:
    """.env can turn a channel off with an empty route; an empty secret or Flower password
    falls back to the development default (which warns), never to no secret at all."""
    env_file = "OTPFLOW_ROUTES__VOICE=\nOTPFLOW_SECRET=\nFLOWER_BASIC_AUTH=\n"
    services = yaml.safe_load(run_compose(tmp_path, "config", env_file=env_file))["services"]
    assert services["api"]["environment"]["OTPFLOW_ROUTES__VOICE"] == ""
    assert services["api"]["environment"]["OTPFLOW_SECRET"] == DEV_SECRET
    assert services["flower"]["environment"]["FLOWER_BASIC_AUTH"] == "admin:change-me"


def test_healthchecks_everywhere(services: dict[str, dict[str, Any]]) -> None:
    checked = {name for name, service in services.items() if service.get("healthcheck")}
    assert checked == SERVICES
    for service in services.values():
        if "healthcheck" in service:
            assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])
    assert "/healthcheck" in " ".join(services["flower"]["healthcheck"]["test"])
    assert "/healthz" in " ".join(services["simulator"]["healthcheck"]["test"])


def test_each_worker_pings_its_own_node_name(services: dict[str, dict[str, Any]]) -> None:
    for name in WORKERS:
        role = option(services[name]["command"], "--hostname")
        assert role.endswith("@%h"), name
        test = services[name]["healthcheck"]["test"]
        assert test[0] == "CMD-SHELL"
        # compose prints $$ (a literal $ for the shell) as it was written
        assert f"--destination {role.removesuffix('%h')}$$HOSTNAME" in test[1], name


def test_start_order(services: dict[str, dict[str, Any]]) -> None:
    for name in OTPFLOW_SERVICES:
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}, name
    assert services["worker"]["depends_on"]["simulator"] == {"condition": "service_healthy"}
    for name, service in services.items():
        for target, dependency in service.get("depends_on", {}).items():
            if dependency["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits on {target}'s health"


def test_workers_split_the_queues(services: dict[str, dict[str, Any]]) -> None:
    consumed = [
        queue
        for name in WORKERS
        for queue in option(services[name]["command"], "--queues").split(",")
    ]
    assert sorted(consumed) == sorted(ALL_QUEUES), "each queue has exactly one worker service"
    assert option(services["worker"]["command"], "--queues") == "otpflow.send"


def test_send_workers_scale(services: dict[str, dict[str, Any]]) -> None:
    """`--scale worker=N` needs no fixed container name and no published port."""
    assert "container_name" not in services["worker"]
    assert "ports" not in services["worker"]


def test_flower_is_read_only_behind_basic_auth(services: dict[str, dict[str, Any]]) -> None:
    flower = services["flower"]
    environment = flower["environment"]
    user, _, password = environment["FLOWER_BASIC_AUTH"].partition(":")
    assert user and password
    assert environment["FLOWER_READ_ONLY"] == "true"
    assert "FLOWER_UNAUTHENTICATED_API" not in environment
    assert flower["entrypoint"][:4] == ["celery", "-A", "otpflow.worker", "flower"]


def test_nothing_is_published_beyond_this_host_until_asked(
    services: dict[str, dict[str, Any]],
) -> None:
    # the API serves the public development secrets as it comes: on this host only, until
    # API_PUBLISH_ADDRESS (with real secrets) publishes it
    ports = {
        name: [published(port) for port in service.get("ports", [])]
        for name, service in services.items()
    }
    assert ports["api"] == [("127.0.0.1", "8000")]
    assert ports["flower"] == [("127.0.0.1", "5555")]
    assert ports["simulator"] == [("127.0.0.1", "9000")]
    assert {name for name, bound in ports.items() if bound} == {"api", "flower", "simulator"}
