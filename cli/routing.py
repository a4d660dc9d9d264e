"""``otpflow routing``: adaptive routing's live table, as ``GET /v1/routing/stats`` shows it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console

from otpflow.cli.errors import EXIT_OK, checked_settings


def cmd_routing(args: argparse.Namespace) -> int:
    from otpflow.producers import OtpflowClient

    settings = checked_settings()
    client = OtpflowClient(settings)
    try:
        rows = client.router.table()
    finally:
        client.close()
    if args.json:
        print(json.dumps({"mode": settings.routing.mode, "rows": rows}, indent=2))
        return EXIT_OK
    print_table(Console(), settings.routing.mode, settings.routing.window_seconds, rows)
    return EXIT_OK


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def print_table(console: Console, mode: str, window: int, rows: list[dict[str, Any]]) -> None:
    """Per channel and country, one line per provider, best first (a table of twelve columns
    wraps in a terminal)."""
    if not rows:
        console.print(f"routing: {mode}; nothing measured in the last {window} s")
        return
    console.print(f"routing: {mode}, over the last {window} s; * the preferred provider")
    heading = None
    for row in rows:
        if (row["channel"], row["country"]) != heading:
            heading = (row["channel"], row["country"])
            console.print(f"[bold]{row['channel']} {row['country']}[/bold]")
        counts = row["counts"]
        mark = " *" if row["preferred"] else ""
        console.print(
            f"  {row['rank']}. {row['provider']}{mark}: score {row['score']:.3f}, "
            f"sent {counts.get('sent', 0)}, delivered {_share(row['delivered_share'])}, "
            f"p50 {_seconds(row['latency_p50_seconds'])}, "
            f"p90 {_seconds(row['latency_p90_seconds'])}, "
            f"errors {_share(row['error_share'])}, conversion {_share(row['conversion'])}, "
            f"breaker {row['breaker'].replace('_', '-')}",
            soft_wrap=True,
            highlight=False,
        )


def add_routing(sub: Any) -> None:
    routing = sub.add_parser(
        "routing",
        help="show adaptive routing's live statistics, scores and breakers",
        description="Each provider's delivery, latency, errors, conversion, score and circuit "
        "breaker per channel and country, over the statistics' window (README, Routing).",
    )
    routing.add_argument("--json", action="store_true", help="print JSON for scripts")
    routing.set_defaults(func=cmd_routing)
