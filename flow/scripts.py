"""The store's Lua scripts: one file each in ``lua/``, loaded once by name.

A transition script (every one that changes a flow) runs after the prelude: the tables
rendered from :mod:`otpflow.flow.states` (``STEP``, ``FLOW``, ``FLOW_ENDED``, ``DLR_POLICY``),
the metrics' helpers (:func:`otpflow.flow.metrics.lua_prelude`), routing's statistics and
breakers (:func:`otpflow.flow.routing.lua_prelude` and ``routing.lua``) and ``prelude.lua``.
Each file opens with a comment naming its ``KEYS`` and ``ARGV``; every key is named in
:mod:`otpflow.flow.keys` and passed in, never built inside a script, but for one: a routing
statistics bucket is named by Redis's clock, so its prefix is rendered from ``keys``.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from redis import Redis
from redis.commands.core import Script

from otpflow.config.routing import RoutingSettings
from otpflow.flow import dashboard_store, metrics, routing
from otpflow.flow.states import (
    FLOW_TRANSITIONS,
    STEP_TRANSITIONS,
    TERMINAL_FLOW,
    lua_dlr_policy,
    lua_set,
    lua_table,
)

TRANSITIONS = (
    "claim",
    "accepted",
    "send_error",
    "attempt_failed",
    "dlr",
    "check",
    "cancel",
    "verify_attempt",
    "verified",
    "wrong_code",
    "confirm",
    "event",
)


@cache
def source(name: str) -> str:
    """The text of ``lua/<name>.lua``."""
    return (files("otpflow.flow") / "lua" / f"{name}.lua").read_text()


@cache
def _tables() -> str:
    return (
        lua_table("STEP", STEP_TRANSITIONS)
        + lua_table("FLOW", FLOW_TRANSITIONS)
        + lua_set("FLOW_ENDED", TERMINAL_FLOW)
        + lua_dlr_policy()
        + metrics.lua_prelude()
    )


def _routing(settings: RoutingSettings) -> str:
    return (
        routing.lua_prelude(settings)
        + source("routing")
        + dashboard_store.lua_prelude()
        + source("dashboard")
    )


def prelude(settings: RoutingSettings | None = None) -> str:
    return _tables() + _routing(settings or RoutingSettings()) + source("prelude")


def register(redis: Redis, settings: RoutingSettings | None = None) -> dict[str, Script]:
    """Every script, registered on this client, by name; routing's constants (window,
    breaker thresholds) are rendered in from ``settings``."""
    settings = settings or RoutingSettings()
    head = prelude(settings)
    scripts = {name: head + source(name) for name in TRANSITIONS}
    scripts["create"] = source("create") + "return create(KEYS, ARGV)\n"
    scripts["submit"] = source("admit") + source("create") + source("fraud") + source("submit")
    for name in ("take_due", "later", "release_active"):
        scripts[name] = source(name)
    scripts["converted"] = _routing(settings) + source("converted")
    return {name: redis.register_script(text) for name, text in scripts.items()}
