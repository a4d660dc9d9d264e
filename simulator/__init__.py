"""Provider simulator: a loopback server speaking the providers' APIs.

Zixflow SMS, WhatsApp, RCS and email (:mod:`.zixflow`), MessageFlow SMS (:mod:`.messageflow`),
the JSON gateway for voice, telegram, viber, whatsapp, rcs and sms (:mod:`.gateway`) and,
optionally, plain SMTP for email (:mod:`.smtp`).

It answers as the real providers do and posts delivery reports (DLRs) back after a configurable
delay with a configurable outcome (deliver, fail, never, reject, 5xx, slow) per channel and per
recipient. The demo, the tests, the benchmarks and docker-compose use it instead of real
providers. It imports nothing from the rest of otpflow: it only speaks provider APIs.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["serve"]


def serve(
    host: str = "127.0.0.1",
    port: int = 8900,
    smtp_port: int | None = None,
    **create_app_kwargs: Any,
) -> None:
    """Run the simulator with uvicorn until interrupted (blocking).

    With ``smtp_port`` an SMTP server for email also listens on ``host``:``smtp_port``. Once
    it listens it prints one line on stderr: where, and how to read and steer it.
    """
    import uvicorn

    from .app import create_app

    app = create_app(smtp_port=smtp_port, smtp_host=host, **create_app_kwargs)

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:
                bound = [s.getsockname()[1] for srv in self.servers for s in srv.sockets]
                print(
                    listening_line(host, bound[0] if bound else port, app.state.sim.smtp_port),
                    file=sys.stderr,
                    flush=True,
                )

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    Server(config).run()


def listening_line(host: str, port: int, smtp_port: int | None) -> str:
    """The line the simulator prints once it listens."""
    smtp = f", SMTP on {host}:{smtp_port}" if smtp_port is not None else ""
    return (
        f"simulator listening on http://{host}:{port}{smtp}; GET /_sim/requests shows what it "
        "received, POST /_sim/rules sets outcomes"
    )
