"""config/simulator.env, the recipe for a local stack by hand, says what the demo's stack sets."""

from __future__ import annotations

from pathlib import Path

from otpflow.cli.stack import Stack
from otpflow.config.settings import Settings

from harness import env_fields

SIMULATOR_ENV = Path(__file__).resolve().parents[2] / "config" / "simulator.env"


def simulator_env() -> dict[str, str]:
    pairs = {}
    for line in SIMULATOR_ENV.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            pairs[name] = value
    return pairs


def test_it_points_every_provider_at_the_simulator_as_the_demo_does() -> None:
    stack = Stack(
        redis_url="redis://127.0.0.1:6379/0", api_port=8000, sim_port=9000, smtp_port=2525
    )
    wanted = {
        name: value
        for name, value in stack.env().items()
        if name.startswith(("OTPFLOW_PROVIDERS__", "OTPFLOW_PUBLIC_URL", "OTPFLOW_ALLOW_PRIVATE"))
    }
    assert simulator_env() == wanted


def test_it_names_only_real_settings() -> None:
    assert simulator_env().keys() <= env_fields(Settings).keys()
