"""Helpers for the provider tests: the simulator over a real socket, a real DLR receiver."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from typing import Any

import httpx
import pytest

from otpflow.simulator.app import create_app

from harness import HttpRecorder, fails_on_fail_paths, running, wait_for


@pytest.fixture
def dlrs() -> Iterator[HttpRecorder]:
    rec = HttpRecorder(fails_on_fail_paths)
    yield rec
    rec.close()


class Sim:
    """A running simulator: its HTTP client, its app and the /_sim helpers the tests use."""

    def __init__(self, http: httpx.Client, app: Any) -> None:
        self.http = http
        self.app = app

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.post(path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def rules(self, *rules: dict[str, Any]) -> None:
        resp = self.http.post("/_sim/rules", json={"rules": list(rules)})
        assert resp.status_code == 200, resp.text

    def requests(self, **filters: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.http.get("/_sim/requests", params=filters).json()[
            "requests"
        ]
        return rows

    def postbacks(self, **filters: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.http.get("/_sim/postbacks", params=filters).json()[
            "postbacks"
        ]
        return rows

    def dlr(self, request_id: Any, **extra: Any) -> httpx.Response:
        return self.http.post("/_sim/dlr", json={"request_id": request_id, **extra})

    @staticmethod
    def wait(cond: Callable[[], Any], timeout: float = 5.0) -> Any:
        return wait_for(cond, timeout)


@pytest.fixture
def start_sim() -> Iterator[Callable[..., Sim]]:
    """``start_sim(**create_app_kwargs)``: a running simulator (stopped after the test)."""
    with ExitStack() as stack:

        def start(**kwargs: Any) -> Sim:
            kwargs.setdefault("default_delay_ms", 20)
            app = create_app(**kwargs)
            return Sim(stack.enter_context(running(app)), app)

        yield start


@pytest.fixture
def run_app() -> Callable[[Any], AbstractContextManager[httpx.Client]]:
    """``with run_app(app) as client:`` serves ``app`` until the block ends."""
    return running


@pytest.fixture
def wait() -> Callable[..., Any]:
    """``wait(cond, timeout=20.0)``: poll ``cond`` until truthy, or fail at the deadline."""
    return wait_for


@pytest.fixture
def sim(start_sim: Callable[..., Sim]) -> Sim:
    """A simulator with default credentials and a 20 ms DLR delay."""
    return start_sim()
