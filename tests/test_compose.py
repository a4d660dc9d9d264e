"""docker-compose.yml is valid and has every service of the stack."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is not installed (.ci/run installs it)")
        pytest.skip("docker-compose is not installed")
    return found


def test_compose_file_is_valid_and_complete() -> None:
    binary = compose()
    subprocess.run([binary, "config", "-q"], cwd=ROOT, check=True)
    services = subprocess.run(
        [binary, "config", "--services"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split()
    assert set(services) == {"redis", "api", "worker", "beat", "flower", "simulator"}
