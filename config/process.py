"""What every long-running OTPflow process does once it is built (API and worker alike)."""

from __future__ import annotations

import gc


def freeze_heap() -> None:
    """Leave everything built so far (modules, the app, clients) out of the cyclic garbage
    collector's reach from now on. A full collection otherwise walks all of it, holding the
    GIL for 30-90 ms in a worker while every task waits (measured with --sms failed in
    benchmarks/flows.py); what is built later is collected as before."""
    gc.collect()
    gc.freeze()
