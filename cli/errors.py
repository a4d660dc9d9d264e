"""What the ``otpflow`` command says when something is wrong: its exit codes, one line per
error (never a traceback for a mistake the user can fix or a service they must start), the
settings checked before any command runs, and URLs printed without their passwords.
"""

from __future__ import annotations

import warnings
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.text import Text

from otpflow.config.settings import InsecureDefaultWarning, Settings, load_settings

EXIT_OK = 0
EXIT_NOT_DELIVERED = 1
EXIT_INVALID = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130

console = Console(stderr=True)

# The settings this process loaded, so an error about Redis can name the URL it tried.
_loaded: Settings | None = None


class UserError(Exception):
    """A mistake the user can fix, or a service they must start: one line, no traceback."""

    def __init__(self, message: str, code: int = EXIT_INVALID) -> None:
        super().__init__(message)
        self.code = code


def checked_settings(warn: bool = False) -> Settings:
    """Load and check the settings; with ``warn``, print the development-default warnings
    (only the commands that serve requests or sign anything need them)."""
    global _loaded
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InsecureDefaultWarning)
        settings = load_settings()
    _check_urls(settings)
    _loaded = settings
    for warning in caught if warn else []:
        print_warning(str(warning.message))
    return settings


def masked(url: str) -> str:
    """The URL without its password, fit to print."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"


def _check_urls(settings: Settings) -> None:
    from redis.connection import parse_url

    url = settings.redis_url
    try:
        if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("it must start with redis://, rediss:// or unix://")
        parse_url(url)
        database = urlsplit(url).path.strip("/")
        if not url.startswith("unix") and database and not database.isdigit():
            raise ValueError(f"the database must be a number, not {database!r}")
    except ValueError as exc:
        reason = str(exc)
        raise UserError(
            f"OTPFLOW_REDIS_URL={masked(url)!r} is not a usable Redis URL: "
            f"{reason[:1].lower()}{reason[1:]}; set it like redis://127.0.0.1:6379/0"
        ) from exc
    if settings.broker_url != settings.redis_url:
        from kombu.transport import TRANSPORT_ALIASES

        if urlsplit(settings.broker_url).scheme not in TRANSPORT_ALIASES:
            raise UserError(
                f"OTPFLOW_BROKER_URL={masked(settings.broker_url)!r} is not a broker URL: "
                "set it like redis://127.0.0.1:6379/1 or amqp://user:password@host:5672//, "
                "or leave it empty to use OTPFLOW_REDIS_URL"
            )


def _setting_name(location: tuple[int | str, ...]) -> str:
    return "OTPFLOW_" + "__".join(str(part).upper() for part in location)


SECRET_PARTS = ("secret", "key", "password", "auth", "token")


def settings_error(exc: Any) -> UserError:
    """One line naming each bad setting by its environment variable and what is wrong."""
    problems = []
    for error in exc.errors():
        name = _setting_name(error["loc"]) if error["loc"] else "OTPFLOW settings"
        message = str(error["msg"]).removeprefix("Value error, ").removeprefix(f"{name} ")
        value = error.get("input")
        secret = any(part in name.lower() for part in SECRET_PARTS)
        got = (
            f" (got {value!r})"
            if isinstance(value, str | int | float) and not secret and len(str(value)) < 60
            else ""
        )
        problems.append(f"{name}: {message[:1].lower()}{message[1:]}{got}")
    noun = "setting" if len(problems) == 1 else "settings"
    return UserError(
        f"bad {noun} {'; '.join(problems)}; fix it in the environment or in .env", EXIT_INVALID
    )


def _unreachable(exc: BaseException) -> UserError | None:
    """Redis or the broker did not answer: say which, where, and what to do."""
    import redis

    cause = exc.__cause__ if exc.__cause__ is not None else exc
    settings = _loaded

    def at(url: str | None) -> str:
        return f" at {masked(url)}" if url else ""

    redis_at = at(settings.redis_url if settings else None)
    if isinstance(cause, redis.AuthenticationError):
        return UserError(
            f"Redis{redis_at} refused the login ({cause}): put the right password in "
            "OTPFLOW_REDIS_URL (redis://:PASSWORD@host:6379/0)",
            EXIT_UNAVAILABLE,
        )
    if isinstance(cause, redis.ConnectionError | redis.TimeoutError):
        detail = str(cause).rstrip(".").rsplit(". ", 1)[-1]
        return UserError(
            f"cannot reach Redis{redis_at} ({detail[:1].lower()}{detail[1:]}): "
            "start redis-server or set OTPFLOW_REDIS_URL",
            EXIT_UNAVAILABLE,
        )
    if isinstance(cause, redis.RedisError):
        return None  # Redis answered, with an error: not the user's mistake
    return UserError(
        f"cannot reach the task broker{at(settings.broker_url if settings else None)}: "
        "start it or set OTPFLOW_BROKER_URL",
        EXIT_UNAVAILABLE,
    )


def user_error(exc: BaseException) -> UserError | None:
    """The one-line message for a known user-facing failure; None for anything else (a bug,
    which keeps its traceback)."""
    import redis
    from pydantic import ValidationError

    from otpflow.producers import Conflict, InvalidRequest, RateLimited, ServiceUnavailable

    if isinstance(exc, UserError):
        return exc
    if isinstance(exc, ValidationError) and exc.title == Settings.__name__:
        return settings_error(exc)
    if isinstance(exc, InvalidRequest):
        return UserError(f"invalid flow: {exc}", EXIT_INVALID)
    if isinstance(exc, ServiceUnavailable | redis.ConnectionError | redis.TimeoutError):
        return _unreachable(exc)
    if isinstance(exc, RateLimited):
        return UserError(f"refused: {exc}; try again in {exc.retry_after} s", EXIT_UNAVAILABLE)
    if isinstance(exc, Conflict):
        return UserError(f"refused: {exc}", EXIT_UNAVAILABLE)
    return None


def _stderr_line(label: str, message: str) -> None:
    """One line on stderr, however long (a log collector keeps it whole)."""
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    err.print(Text.assemble((label, "bold red"), " ", message))


def print_error(error: UserError) -> None:
    _stderr_line("error:", str(error))


def print_warning(message: str) -> None:
    """A development-default warning, as every command prints it: ``WARNING <message>``."""
    _stderr_line("WARNING", message)
