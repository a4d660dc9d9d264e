"""``python -m otpflow.simulator``: run the provider simulator."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import serve


def main(argv: list[str] | None = None) -> None:
    """Parse command-line options and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="otpflow-simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--api-key", default="sim-key")
    parser.add_argument("--workspace-id", default="sim-workspace")
    parser.add_argument("--messageflow-application-key", default="mf-app-key")
    parser.add_argument("--messageflow-authorization", default="mf-token")
    parser.add_argument("--gateway-auth", default="gw-auth")
    parser.add_argument(
        "--smtp-port", type=int, help="also serve SMTP for email on 127.0.0.1 at this port"
    )
    parser.add_argument("--delay-ms", type=int, default=200, help="default DLR delay")
    parser.add_argument("--rules", help="outcome rules: a JSON list, or a path to a JSON file")
    args = parser.parse_args(argv)
    rules = None
    if args.rules:
        text = args.rules if args.rules.lstrip().startswith("[") else Path(args.rules).read_text()
        rules = json.loads(text)
    serve(
        args.host,
        args.port,
        api_key=args.api_key,
        workspace_id=args.workspace_id,
        messageflow_application_key=args.messageflow_application_key,
        messageflow_authorization=args.messageflow_authorization,
        gateway_auth=args.gateway_auth,
        smtp_port=args.smtp_port,
        default_delay_ms=args.delay_ms,
        rules=rules,
    )


if __name__ == "__main__":
    main()
