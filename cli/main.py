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
import json
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

from otpflow.cli.dashboard import add_dashboard
from otpflow.cli.errors import (
    EXIT_INTERRUPTED,
    EXIT_NOT_DELIVERED,
    EXIT_OK,
    UserError,
    checked_settings,
    console,
    masked,
    print_error,
    user_error,
)
from otpflow.cli.fraud import add_fraud
from otpflow.cli.routing import add_routing
from otpflow.cli.serve import cmd_api, cmd_simulator, cmd_worker
from otpflow.config.celery import ALL_QUEUES
from otpflow.config.settings import Settings

if TYPE_CHECKING:
    from otpflow.flow.models import FlowRequest
    from otpflow.flow.views import FlowView
    from otpflow.producers import OtpflowClient


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

    settings = checked_settings()
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

    settings = checked_settings()
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
    print(webhook_secret(checked_settings().secret.get_secret_value(), args.workspace))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from otpflow.cli.demo import run_demo

    return run_demo(Console(), checked_settings(), timeout=args.timeout)


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
        add_fraud,
        add_routing,
        add_dashboard,
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
