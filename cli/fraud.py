"""``otpflow fraud blocks`` and ``otpflow fraud lift``: the fraud guard's blocks, as an
operator sees and undoes them (the same as ``GET`` and ``DELETE /v1/fraud/blocks``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console

from otpflow.cli.errors import EXIT_OK, UserError, checked_settings


def cmd_fraud_blocks(args: argparse.Namespace) -> int:
    from otpflow.api.schemas import block_json
    from otpflow.producers import OtpflowClient

    client = OtpflowClient(checked_settings())
    try:
        blocks = [block_json(raw) for raw in client.store.fraud.blocks(args.workspace)]
    finally:
        client.close()
    if args.json:
        print(json.dumps({"blocks": blocks}, indent=2))
        return EXIT_OK
    print_blocks(Console(), args.workspace, blocks)
    return EXIT_OK


def print_blocks(console: Console, workspace: str, blocks: list[dict[str, Any]]) -> None:
    """Each block in a few lines (a table of eight columns wraps in a terminal): the id
    first, whole, for otpflow fraud lift."""
    if not blocks:
        console.print(f"no blocks in force for workspace {workspace}")
        return
    for block in blocks:
        console.print(f"[bold]{block['id']}[/bold]", soft_wrap=True)
        console.print(
            f"  {block['scope']} {block['value']} ({block['country']}): {block['reason']}, "
            f"{block['detail']}",
            soft_wrap=True,
        )
        console.print(
            f"  since {block['since']}, until {block['until']}; mode {block['mode']}, "
            f"{block['refused']} flows refused",
            soft_wrap=True,
        )


def cmd_fraud_lift(args: argparse.Namespace) -> int:
    from otpflow.flow.fraud import BLOCK_ID
    from otpflow.producers import OtpflowClient

    if not BLOCK_ID.fullmatch(args.block_id):
        raise UserError(f"{args.block_id!r} is no block id: otpflow fraud blocks lists them")
    client = OtpflowClient(checked_settings())
    try:
        lifted = client.store.fraud.lift(args.workspace, args.block_id)
    finally:
        client.close()
    if not lifted:
        raise UserError(f"no block {args.block_id} in workspace {args.workspace}")
    print(f"lifted {args.block_id}: its numbers start afresh")
    return EXIT_OK


def add_fraud(sub: Any) -> None:
    fraud = sub.add_parser(
        "fraud",
        help="list or lift the fraud guard's blocks",
        description="The fraud guard's blocks of prefixes and countries (README, Fraud).",
    )
    commands = fraud.add_subparsers(dest="fraud_command", required=True)
    blocks = commands.add_parser("blocks", help="list the blocks in force")
    blocks.add_argument("--workspace", required=True, help="the workspace (x-workspace-id)")
    blocks.add_argument("--json", action="store_true", help="print JSON for scripts")
    blocks.set_defaults(func=cmd_fraud_blocks)
    lift = commands.add_parser("lift", help="lift a block (its prefix or country starts afresh)")
    lift.add_argument("--workspace", required=True, help="the workspace (x-workspace-id)")
    lift.add_argument("block_id", help="an id that otpflow fraud blocks lists")
    lift.set_defaults(func=cmd_fraud_lift)
