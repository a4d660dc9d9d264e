"""The README stays true: its settings and metrics tables match the code."""

from __future__ import annotations

import re
from pathlib import Path

from otpflow.config.settings import Settings

from harness import env_fields

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_settings_table_matches_the_settings() -> None:
    table = set(re.findall(r"^\| `(OTPFLOW_[A-Z_]+)` \|", README, flags=re.MULTILINE))
    assert table == set(env_fields(Settings))


def test_readme_gives_the_test_command_ci_runs() -> None:
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "python -m pytest" in README
    assert "python3 -m pytest" in ci


def test_metrics_table_lists_every_metric() -> None:
    from otpflow.api.metrics import GAUGES
    from otpflow.flow.metrics import METRICS

    table = set(re.findall(r"^\| `otpflow_([a-z_]+?)(?:_total)?` ", README, flags=re.MULTILINE))
    assert table == set(METRICS) | set(GAUGES)
