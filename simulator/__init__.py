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

from typing import Any

__all__ = ["serve"]


def serve(
    host: str = "127.0.0.1",
    port: int = 8900,
    smtp_port: int | None = None,
    **create_app_kwargs: Any,
) -> None:
    """Run the simulator with uvicorn until interrupted (blocking).

    With ``smtp_port`` an SMTP server for email also listens on ``host``:``smtp_port``.
    """
    import uvicorn

    from .app import create_app

    uvicorn.run(
        create_app(smtp_port=smtp_port, smtp_host=host, **create_app_kwargs),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
    )
