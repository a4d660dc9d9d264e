"""Provider simulator: a loopback HTTP server speaking the Zixflow SMS and WhatsApp APIs.

It answers as the real providers do and posts delivery reports (DLRs) back after a configurable
delay with a configurable outcome (deliver, fail, never, reject, 5xx, slow) per channel and per
recipient. The demo, the tests, the benchmarks and docker-compose use it instead of real
providers. It imports nothing from the rest of otpflow: it only speaks provider APIs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["serve"]


def serve(host: str = "127.0.0.1", port: int = 8900, **create_app_kwargs: Any) -> None:
    """Run the simulator with uvicorn until interrupted (blocking)."""
    import uvicorn

    from .app import create_app

    uvicorn.run(
        create_app(**create_app_kwargs),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
    )
