"""``celery -A otpflow.worker worker`` starts by importing the worker's Celery app."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys

import pytest

from otpflow.config.settings import Settings
from otpflow.flow.contract import ARGUMENTS, RELAY_DLR, arguments


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


def test_every_task_takes_the_arguments_of_the_contract() -> None:
    # the contract spells each task's arguments once; the worker's functions take exactly those
    from otpflow.worker.celery_app import create_worker_app

    app = create_worker_app(Settings(broker_url="memory://"))
    for name, expected in ARGUMENTS.items():
        parameters = list(inspect.signature(app.tasks[name].run).parameters)
        assert tuple(parameters) == expected, name
    assert arguments(RELAY_DLR, flow_id="f", step=1, index=2, attempt=3) == ["f", 1, 2, 3]
    with pytest.raises(TypeError):
        arguments(RELAY_DLR, flow_id="f", step=1)
