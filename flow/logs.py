"""Structured logs: one JSON object per line, with phone numbers and emails masked.

Log calls pass ids in ``extra``; the formatter masks the message and every extra value anyway,
because text from outside (provider replies) can echo a recipient back.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from otpflow.flow.redact import mask

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": mask(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = mask(value) if isinstance(value, str) else value
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
            entry["detail"] = mask(str(record.exc_info[1]))[:500]
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO, and a caller's URL may carry anything
    logging.getLogger("httpx").setLevel(logging.WARNING)
