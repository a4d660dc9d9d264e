"""``otpflow dashboard-user``: a dashboard user's settings entry, its password hashed (the
password itself is never stored or printed)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from otpflow.cli.errors import EXIT_OK, UserError

MIN_PASSWORD_LENGTH = 12


def cmd_dashboard_user(args: argparse.Namespace) -> int:
    from otpflow.api.dashboard_auth import hash_password
    from otpflow.config.dashboard import DashboardUser

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise UserError("the two passwords differ")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"a dashboard password needs at least {MIN_PASSWORD_LENGTH} characters")
    if ":" in args.workspace or ":" in args.name or "," in args.name:
        raise UserError("a workspace or user name holds no ':' or ','")
    user = DashboardUser(
        workspace=args.workspace, name=args.name, role=args.role, password=hash_password(password)
    )
    print(user.entry())
    print(
        "add it to OTPFLOW_DASHBOARD__USERS (comma separated) and restart the API",
        file=sys.stderr,
    )
    return EXIT_OK


def add_dashboard(sub: Any) -> None:
    user = sub.add_parser(
        "dashboard-user",
        help="print a dashboard user's OTPFLOW_DASHBOARD__USERS entry (password hashed)",
        description="A support (read-only) or admin user of one workspace for /dashboard: "
        "prints workspace:name:role:hash for OTPFLOW_DASHBOARD__USERS (README, Dashboard).",
    )
    user.add_argument("--workspace", required=True, help="the workspace (x-workspace-id)")
    user.add_argument("--name", required=True, help="the user's sign-in name")
    user.add_argument("--role", choices=("support", "admin"), default="support")
    user.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    user.set_defaults(func=cmd_dashboard_user)
