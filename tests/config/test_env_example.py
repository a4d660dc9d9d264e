"""config/.env.example documents every setting, with its true default, and nothing else."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from otpflow.config.settings import Settings

from harness import env_fields

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / ".env.example"
LINES = EXAMPLE.read_text().splitlines()
# "# NAME=value" (documented, commented out) or "NAME=value" (set)
ASSIGNMENT = re.compile(r"^(?:# )?([A-Z][A-Z0-9_]*)=(.*)$")


FIELDS = env_fields(Settings)
# the placeholders: credentials and keys, never shown with a real value
SECRETS = {name for name, annotation in FIELDS.items() if annotation is SecretStr} | {
    "OTPFLOW_API_KEYS"
}


def assignments() -> list[tuple[int, str, str]]:
    return [
        (number, match.group(1), match.group(2))
        for number, line in enumerate(LINES)
        if (match := ASSIGNMENT.match(line))
    ]


def value(settings: Settings, env_name: str) -> Any:
    found: Any = settings
    for part in env_name.removeprefix("OTPFLOW_").lower().split("__"):
        found = getattr(found, part)
    return found.get_secret_value() if isinstance(found, SecretStr) else found


def test_every_setting_is_documented_once_and_nothing_else() -> None:
    names = Counter(name for _, name, _ in assignments() if name.startswith("OTPFLOW_"))
    assert set(names) == set(FIELDS), "documented names must be exactly the settings"
    assert [name for name, count in names.items() if count > 1] == []


def test_every_setting_has_its_own_comment_line() -> None:
    for number, name, _ in assignments():
        above = LINES[number - 1] if number else ""
        assert above.startswith("# ") and not ASSIGNMENT.match(above), (
            f"{name} needs a one-line comment right above it"
        )


def test_documented_defaults_are_the_defaults_and_secrets_are_placeholders(
    clean_env: None, tmp_path: Path
) -> None:
    # every line uncommented must load, and give the real default for everything but secrets
    uncommented = tmp_path / ".env"
    uncommented.write_text(
        "\n".join(
            line.removeprefix("# ") if ASSIGNMENT.match(line) else line
            for line in LINES
            if not line.startswith(("# FLOWER_", "# API_PUBLISH_"))
        )
    )
    documented = Settings(_env_file=uncommented)  # type: ignore[call-arg]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    differing = {name for name in FIELDS if value(documented, name) != value(defaults, name)}
    assert differing == SECRETS


def test_the_file_as_shipped_sets_nothing(clean_env: None) -> None:
    """Copied unedited, it changes no setting: the development secrets stay, and warn."""
    assert [name for number, name, _ in assignments() if not LINES[number].startswith("#")] == []
    shipped = Settings(_env_file=EXAMPLE)  # type: ignore[call-arg]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert {name: value(shipped, name) for name in FIELDS} == {
        name: value(defaults, name) for name in FIELDS
    }
    assert shipped.uses_dev_secret and shipped.uses_dev_api_keys


def test_every_variable_the_compose_file_reads_is_documented() -> None:
    lines = (ROOT / "docker-compose.yml").read_text().splitlines()
    compose = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    read = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", compose))
    assert read >= set(FIELDS), "the compose file must pass every setting to the containers"
    assert read <= {name for _, name, _ in assignments()}
