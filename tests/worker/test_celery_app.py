"""``celery -A otpflow.worker worker`` starts by importing the worker's Celery app."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_development_defaults_are_log_lines_not_python_warnings() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTPFLOW_")}
    result = subprocess.run(
        [sys.executable, "-c", "import otpflow.worker.celery_app"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [line["msg"].split(" is not set")[0] for line in lines] == [
        "OTPFLOW_SECRET",
        "OTPFLOW_API_KEYS",
    ]
    assert {line["level"] for line in lines} == {"warning"}
