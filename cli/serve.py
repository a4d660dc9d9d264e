"""The commands that run OTPflow's processes: ``otpflow worker``, ``otpflow api`` (which refuses
a reachable address with the public development secrets) and ``otpflow simulator``."""

from __future__ import annotations

import argparse
import ipaddress
import json
import warnings
from typing import Any

from otpflow.cli.errors import UserError, checked_settings
from otpflow.config.settings import InsecureDefaultWarning, Settings


def cmd_worker(args: argparse.Namespace) -> int:
    # a bad setting or URL is one line here, not a traceback from Celery; the development
    # defaults are warned about here, as the API does, not again as Python warnings
    checked_settings(warn=True)
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
    settings = checked_settings(warn=allowed)
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
