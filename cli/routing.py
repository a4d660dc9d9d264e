"""``otpflow routing``: adaptive routing's live table, as ``GET /v1/routing/stats`` shows it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.table import Table

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
    """One row per (channel, country, provider), best first within each channel and country."""
    if not rows:
        console.print(f"routing: {mode}; nothing measured in the last {window} s")
        return
    table = Table(title=f"routing: {mode}, last {window} s")
    for column in ("channel", "country", "provider", "rank", "score", "sent", "delivered"):
        table.add_column(column)
    for column in ("p50", "p90", "errors", "conversion", "breaker"):
        table.add_column(column)
    for row in rows:
        counts = row["counts"]
        mark = " *" if row["preferred"] else ""  # the preferred provider
        table.add_row(
            row["channel"],
            row["country"],
            row["provider"] + mark,
            str(row["rank"]),
            f"{row['score']:.3f}",
            str(counts.get("sent", 0)),
            _share(row["delivered_share"]),
            _seconds(row["latency_p50_seconds"]),
            _seconds(row["latency_p90_seconds"]),
            _share(row["error_share"]),
            _share(row["conversion"]),
            row["breaker"].replace("_", "-"),
        )
    console.print(table)
    console.print("* the preferred provider (README, Routing)")


def add_routing(sub: Any) -> None:
    routing = sub.add_parser(
        "routing",
        help="show adaptive routing's live statistics, scores and breakers",
        description="Each provider's delivery, latency, errors, conversion, score and circuit "
        "breaker per channel and country, over the statistics' window (README, Routing).",
    )
    routing.add_argument("--json", action="store_true", help="print JSON for scripts")
    routing.set_defaults(func=cmd_routing)
