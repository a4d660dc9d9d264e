"""``otpflow``: run the processes, send a flow, read its status, or watch the demo."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from rich.console import Console

from otpflow.config.celery import ALL_QUEUES
from otpflow.config.settings import InsecureDefaultWarning, Settings, load_settings

console = Console(stderr=True)


def _settings() -> Settings:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InsecureDefaultWarning)
        settings = load_settings()
    for warning in caught:
        console.print(f"[bold red]WARNING[/] {warning.message}")
    return settings


def cmd_worker(args: argparse.Namespace) -> int:
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


def cmd_beat(args: argparse.Namespace) -> int:
    import tempfile

    from otpflow.worker.celery_app import app, settings

    # beat's schedule file only remembers last run times; a fresh one per start is fine
    schedule = Path(tempfile.mkdtemp(prefix="otpflow-beat-")) / "schedule"
    app.start(
        ["beat", "--schedule", str(schedule), "--loglevel", args.loglevel or settings.log_level]
    )
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from otpflow.worker.api import create_app
    from otpflow.worker.logs import configure_logging

    settings = _settings()
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
    )
    return 0


def cmd_simulator(args: argparse.Namespace) -> int:
    from otpflow.simulator import serve

    rules = json.loads(args.rules) if args.rules else []
    serve(args.host, args.port, rules=rules, smtp_port=args.smtp_port)
    return 0


def _client(settings: Settings) -> Any:
    from otpflow.producers import OtpflowClient

    return OtpflowClient(settings)


def cmd_send(args: argparse.Namespace) -> int:
    from otpflow.producers import InvalidRequest, ServiceUnavailable

    settings = _settings()
    raw = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    try:
        request = json.loads(raw)
    except ValueError:
        console.print(f"[red]error:[/] {args.file} is not valid JSON")
        return 2
    try:
        flow_id = _client(settings).send(request, workspace=args.workspace)
    except InvalidRequest as exc:
        for error in exc.errors:
            console.print(f"[red]invalid[/] {error.path}: {error.message}")
        return 2
    except ServiceUnavailable as exc:
        console.print(f"[red]error:[/] {exc} (is Redis running at {settings.redis_url}?)")
        return 1
    print(flow_id)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from otpflow.producers import ServiceUnavailable
    from otpflow.worker.api import flow_json
    from otpflow.worker.timeline import print_flow

    settings = _settings()
    try:
        view = _client(settings).status(args.request_id)
    except ServiceUnavailable as exc:
        console.print(f"[red]error:[/] {exc} (is Redis running at {settings.redis_url}?)")
        return 1
    if view is None:
        console.print(f"[red]error:[/] no flow {args.request_id}")
        return 1
    if args.json:
        print(json.dumps(flow_json(view), indent=2))
    else:
        print_flow(Console(), view)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from otpflow.worker.demo import run_demo

    return run_demo(Console(), _settings(), timeout=args.timeout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otpflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    worker = sub.add_parser("worker", help="run a Celery worker for sends, checks and webhooks")
    worker.add_argument(
        "--pool", default="threads", choices=["threads", "prefork", "solo", "gevent"]
    )
    worker.add_argument("--concurrency", type=int, default=16)
    worker.add_argument("--queues", default=",".join(ALL_QUEUES))
    worker.add_argument("--loglevel", default="", help="default: OTPFLOW_LOG_LEVEL")
    worker.add_argument("--hostname", default="")
    worker.set_defaults(func=cmd_worker)

    beat = sub.add_parser("beat", help="run Celery beat: the periodic recovery sweep")
    beat.add_argument("--loglevel", default="", help="default: OTPFLOW_LOG_LEVEL")
    beat.set_defaults(func=cmd_beat)

    api = sub.add_parser("api", help="serve the HTTP API under uvicorn")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.set_defaults(func=cmd_api)

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

    send = sub.add_parser("send", help="send a flow from a JSON file (or - for stdin)")
    send.add_argument("file")
    send.add_argument("--workspace", default="default")
    send.set_defaults(func=cmd_send)

    status = sub.add_parser("status", help="show a flow's steps and timeline")
    status.add_argument("request_id")
    status.add_argument("--json", action="store_true", help="print JSON for scripts")
    status.set_defaults(func=cmd_status)

    demo = sub.add_parser("demo", help="run everything locally: SMS fails, WhatsApp delivers")
    demo.add_argument("--timeout", type=float, default=60.0)
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
