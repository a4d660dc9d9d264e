"""The command's one-line errors and exit codes (cli/errors.py)."""

from __future__ import annotations

import redis

from otpflow.cli.errors import masked, user_error
from otpflow.producers import RateLimited, ServiceUnavailable


def test_known_errors_map_to_exit_codes() -> None:
    def caused(exc: Exception, cause: BaseException) -> Exception:
        exc.__cause__ = cause
        return exc

    down = user_error(caused(ServiceUnavailable("x"), redis.ConnectionError("refused")))
    broker = user_error(caused(ServiceUnavailable("x"), ConnectionRefusedError()))
    limited = user_error(RateLimited("at most 5 flows", retry_after=42))
    assert down is not None and down.code == 3 and "Redis" in str(down)
    assert broker is not None and broker.code == 3 and "task broker" in str(broker)
    assert limited is not None and limited.code == 3 and "try again in 42 s" in str(limited)
    # Redis answering with an error is not a user's mistake: it keeps its traceback
    lua_bug = caused(ServiceUnavailable("x"), redis.ResponseError("ERR script"))
    assert user_error(lua_bug) is None
    assert user_error(KeyError("bug")) is None


def test_masked_hides_only_the_password() -> None:
    assert masked("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert masked("amqp://user:pw@h:5672//") == "amqp://user:***@h:5672//"
    assert masked("redis://h:6379/0") == "redis://h:6379/0"
