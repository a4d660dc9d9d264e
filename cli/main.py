"""``otpflow``: run the processes, send a flow and follow it, read its status, or watch the demo.

Exit codes (for scripts):

  0    send: the flow was delivered or verified (with --no-wait: accepted); status: shown
  1    send: the flow failed or was cancelled, or --timeout passed before it ended
  2    a mistake to fix: invalid flow or JSON file, unknown request id, bad setting or URL
  3    OTPflow cannot take it now: Redis or the broker is unreachable, a rate limit or a
       running flow for the same recipient refused it; try again later
  130  interrupted (Ctrl-C); a flow being followed goes on
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.text import Text

from otpflow.config.celery import ALL_QUEUES
from otpflow.config.settings import InsecureDefaultWarning, Settings, load_settings

if TYPE_CHECKING:
    from otpflow.flow.models import FlowRequest
    from otpflow.flow.store import FlowView
    from otpflow.producers import OtpflowClient

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


def _settings(warn: bool = False) -> Settings:
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


def cmd_worker(args: argparse.Namespace) -> int:
    # a bad setting or URL is one line here, not a traceback from Celery; the development
    # defaults are warned about here, as the API does, not again as Python warnings
    _settings(warn=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureDefaultWarning)
        from otpflow.worker.celery_app import app, settings

    argv = [
        "worker",
        "--pool",
        args.pool,
        "--concurrency",
        str(args.concurrency),
        "--queues",
        args.queues,
        "--loglevel",
        args.loglevel or settings.log_level,
        "--without-gossip",
        "--without-mingle",
    ]
    if args.hostname:
        argv += ["--hostname", args.hostname]
    app.worker_main(argv)
    return 0


def _loopback(host: str) -> bool:
    """Whether an address to serve on is reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # another name may resolve to any interface


def _refuse_public_development_secrets(host: str, settings: Settings) -> None:
    """The development secret and API key are public (README, compose file): with them, an
    API on a reachable address takes anyone's flows and forged delivery reports."""
    public = [
        name
        for name, in_use in (
            ("OTPFLOW_SECRET", settings.uses_dev_secret),
            ("OTPFLOW_API_KEYS", settings.uses_dev_api_keys),
        )
        if in_use
    ]
    if public and not _loopback(host):
        names = " and ".join(public)
        raise UserError(
            f"refusing to serve on {host} with the public development {names}: set "
            f"{names} (config/.env.example), or serve on 127.0.0.1 (in a container: "
            "publish its port on 127.0.0.1 and say so with --published-on 127.0.0.1)"
        )


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from otpflow.api.app import create_app
    from otpflow.flow.logs import configure_logging

    # in a container, who can reach the API is decided where its port is published
    reachable_on = args.published_on or args.host
    allowed = _loopback(reachable_on)
    # refused, the one line says it all; served, the development defaults are warned about
    settings = _settings(warn=allowed)
    if not allowed:
        _refuse_public_development_secrets(reachable_on, settings)
    configure_logging(settings.log_level)
    # one process by default: on 2 cores a second one measured no faster (README, Performance)
    app: Any = create_app(settings) if args.processes == 1 else "otpflow.api.app:app_from_env"
    uvicorn.run(
        app,
        factory=args.processes > 1,  # each process builds its own app and connections
        workers=args.processes,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
    )
    return 0


def cmd_simulator(args: argparse.Namespace) -> int:
    from otpflow.simulator import serve

    try:
        rules = json.loads(args.rules) if args.rules else []
    except ValueError as exc:
        raise UserError(f"--rules is not valid JSON ({exc}): pass a JSON list of rules") from exc
    serve(args.host, args.port, rules=rules, smtp_port=args.smtp_port)
    return 0


def _client(settings: Settings) -> OtpflowClient:
    from otpflow.producers import OtpflowClient

    return OtpflowClient(settings)


def read_json(name: str) -> Any:
    """The JSON in a file (``-``: standard input), or a UserError saying what is wrong."""
    where = "standard input" if name == "-" else name
    try:
        raw = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise UserError(
            f"no file {name}: give the path of a flow JSON file, or - for stdin"
        ) from exc
    except IsADirectoryError as exc:
        raise UserError(f"{name} is a directory: give the path of a flow JSON file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise UserError(f"cannot read {where} ({reason}): give a readable flow JSON file") from exc
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise UserError(f"{where} is not valid JSON ({exc}): fix it and send again") from exc


def flow_budget(request: FlowRequest, settings: Settings) -> float:
    """The longest a flow can take: each step's timeout, send budget and provider timeout,
    plus the recovery grace, with a minute to spare."""
    per_step = settings.send_budget_seconds + settings.provider_timeout_seconds
    return sum(step.timeout + per_step for step in request.steps) + (
        2 * settings.recovery_grace_seconds + 60
    )


def outcome_code(view: FlowView) -> int:
    return EXIT_OK if view.status in ("delivered", "verified") else EXIT_NOT_DELIVERED


def follow(client: OtpflowClient, flow_id: str, timeout: float, live_console: Console) -> FlowView:
    """Poll the flow about four times a second until it ends or ``timeout`` passes, showing
    its steps and timeline live (on a terminal; elsewhere nothing is drawn)."""
    from rich.console import Group
    from rich.live import Live

    from otpflow.cli.timeline import render_flow

    deadline = time.monotonic() + timeout
    hint = Text(
        f"following it for up to {timeout:.0f} s; Ctrl-C stops watching (the flow goes on)", "dim"
    )
    try:
        with Live(console=live_console, transient=True, auto_refresh=False) as live:
            while True:
                view = client.status(flow_id)
                if view is None:
                    raise UserError(f"flow {flow_id} is gone from Redis (deleted or expired)")
                if view.terminal or time.monotonic() >= deadline:
                    return view
                live.update(Group(render_flow(view), Text(), hint), refresh=True)
                time.sleep(0.25)
    except KeyboardInterrupt:
        console.print(f"stopped watching; the flow goes on: otpflow status {flow_id}")
        raise


def cmd_send(args: argparse.Namespace) -> int:
    from otpflow.api.schemas import flow_json
    from otpflow.cli.timeline import print_flow
    from otpflow.flow.models import FlowRequest

    settings = _settings()
    request = FlowRequest.parse(
        read_json(args.file), allow_private_destinations=settings.allow_private_webhooks
    )
    out = Console()
    client = _client(settings)
    try:
        flow_id = client.send(request, workspace=args.workspace)
        if args.no_wait:
            print(json.dumps({"request_id": flow_id}) if args.json else flow_id)
            return EXIT_OK
        if not args.json:
            out.print(Text.assemble("accepted: request id ", (flow_id, "bold")))
        timeout = args.timeout if args.timeout is not None else flow_budget(request, settings)
        view = follow(client, flow_id, timeout, console if args.json else out)
    finally:
        client.close()
    if args.json:
        print(json.dumps(flow_json(view), indent=2))
    else:
        out.print()
        print_flow(out, view)
    if not view.terminal:
        raise UserError(
            f"flow {flow_id} had not ended after {timeout:g} s (it is {view.status}): "
            f"follow it with otpflow status {flow_id}, or wait longer with --timeout",
            EXIT_NOT_DELIVERED,
        )
    return outcome_code(view)


def cmd_status(args: argparse.Namespace) -> int:
    from otpflow.api.schemas import flow_json
    from otpflow.cli.timeline import print_flow

    settings = _settings()
    client = _client(settings)
    try:
        view = client.status(args.request_id)
    finally:
        client.close()
    if view is None:
        raise UserError(
            f"no flow {args.request_id!r} in the Redis at {masked(settings.redis_url)}: check "
            "the request id and OTPFLOW_REDIS_URL (flows are kept OTPFLOW_FLOW_TTL_SECONDS)"
        )
    if args.json:
        print(json.dumps(flow_json(view), indent=2))
    else:
        print_flow(Console(), view)
    return EXIT_OK


def cmd_webhook_secret(args: argparse.Namespace) -> int:
    from otpflow.flow.signing import webhook_secret

    # the receiver's key, derived from OTPFLOW_SECRET: it opens this workspace's webhooks only
    print(webhook_secret(_settings().secret.get_secret_value(), args.workspace))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from otpflow.cli.demo import run_demo

    return run_demo(Console(), _settings(), timeout=args.timeout)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of seconds")
    return seconds


def plain(doc: str | None) -> str:
    """A docstring as help text: without reStructuredText markup (``code``, :func:`name`)."""
    text = re.sub(r"(?::[a-z]+:)?`{1,2}([^`]+?)`{1,2}", r"\1", doc or "")
    return text.strip()


WORKSPACE_HELP = (
    "the workspace the flow belongs to (default: %(default)s); reading it over HTTP needs the "
    "same x-workspace-id header, with a key that serves it (the development key demo-key "
    "serves the workspaces demo and default)"
)


# the subcommands of build_parser's parser: each command adds its own
Commands = argparse._SubParsersAction  # argparse names no public type for it


def _add_worker(sub: Commands) -> None:
    worker = sub.add_parser(
        "worker", help="run a Celery worker: sends, webhooks, and the timers (timeouts, recovery)"
    )
    worker.add_argument(
        "--pool", default="threads", choices=["threads", "prefork", "solo", "gevent"]
    )
    worker.add_argument("--concurrency", type=int, default=16)
    worker.add_argument("--queues", default=",".join(ALL_QUEUES))
    worker.add_argument("--loglevel", default="", help="default: OTPFLOW_LOG_LEVEL")
    worker.add_argument("--hostname", default="")
    worker.set_defaults(func=cmd_worker)


def _add_api(sub: Commands) -> None:
    api = sub.add_parser("api", help="serve the HTTP API under uvicorn")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument(
        "--published-on",
        metavar="ADDRESS",
        help="in a container: the host address its port is published on, which decides who "
        "can reach the API (the public development OTPFLOW_SECRET and OTPFLOW_API_KEYS are "
        "served on loopback only)",
    )
    api.add_argument(
        "--processes",
        type=int,
        default=1,
        help="API processes sharing the port (uvicorn's workers); one is the measured default",
    )
    api.set_defaults(func=cmd_api)


def _add_simulator(sub: Commands) -> None:
    sim = sub.add_parser("simulator", help="serve the provider simulator")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=9000)
    sim.add_argument("--smtp-port", type=int, default=None, help="also run an SMTP server")
    sim.add_argument(
        "--rules",
        default="",
        help="JSON list of outcome rules, e.g. "
        '\'[{"channel": "sms", "action": "fail", "delay_ms": 300}]\'',
    )
    sim.set_defaults(func=cmd_simulator)


def _add_send(sub: Commands) -> None:
    send = sub.add_parser(
        "send",
        help="send a flow from a JSON file (or - for stdin) and follow it until it ends",
        description="Send a flow, then show its steps and timeline live until it ends. "
        "Exit code: 0 delivered or verified (with --no-wait: accepted), 1 failed, cancelled "
        "or not ended within --timeout, 2 invalid flow, file or settings, 3 Redis or the "
        "broker unreachable, or refused by a rate limit or a running flow.",
    )
    send.add_argument("file", help="the flow as JSON (the HTTP API's request body); - for stdin")
    send.add_argument("--workspace", default="default", help=WORKSPACE_HELP)
    send.add_argument(
        "--no-wait", action="store_true", help="print the request id and return at once"
    )
    send.add_argument(
        "--json",
        action="store_true",
        help="print only JSON on stdout: the flow as otpflow status --json shows it once it "
        'ends (with --no-wait: {"request_id": ...})',
    )
    send.add_argument(
        "--timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="stop following after this long (exit 1); default: the longest the flow can "
        "take (its steps' timeouts and send budgets, plus a minute)",
    )
    send.set_defaults(func=cmd_send)


def _add_status(sub: Commands) -> None:
    status = sub.add_parser(
        "status",
        help="show a flow's steps and timeline",
        description="Show a flow's steps and timeline. Exit code: 0 shown, 2 unknown request "
        "id or bad settings, 3 Redis unreachable.",
    )
    status.add_argument("request_id")
    status.add_argument("--json", action="store_true", help="print JSON for scripts")
    status.set_defaults(func=cmd_status)


def _add_webhook_secret(sub: Commands) -> None:
    secret = sub.add_parser(
        "webhook-secret",
        help="print the secret a workspace's webhook receiver verifies signatures with",
        description="Print the workspace's webhook signing secret (whsec_..., Standard "
        "Webhooks), derived from OTPFLOW_SECRET: give it to the workspace's receiver. It "
        "changes when OTPFLOW_SECRET does.",
    )
    secret.add_argument("--workspace", required=True, help="the workspace (x-workspace-id)")
    secret.set_defaults(func=cmd_webhook_secret)


def _add_demo(sub: Commands) -> None:
    demo = sub.add_parser("demo", help="run everything locally: SMS fails, WhatsApp delivers")
    demo.add_argument("--timeout", type=_seconds, default=60.0, metavar="SECONDS")
    demo.set_defaults(func=cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otpflow",
        description=plain(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (
        _add_worker,
        _add_api,
        _add_simulator,
        _add_send,
        _add_status,
        _add_webhook_secret,
        _add_demo,
    ):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. Known user-facing failures (bad settings or URL, Redis down, a bad
    file, an unknown id) become one line on stderr and an exit code, never a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        error = user_error(exc)
        if error is None:
            raise
        print_error(error)
        return error.code


if __name__ == "__main__":
    sys.exit(main())
