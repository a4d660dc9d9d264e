"""The store's Lua scripts: one file each in ``lua/``, loaded once by name.

A transition script (every one that changes a flow) runs after the prelude: the tables
rendered from :mod:`otpflow.flow.states` (``STEP``, ``FLOW``, the status sets ``FLOW_ENDED``,
``STEP_ENDED``, ``STEP_RUNNING``, ``STEP_UNSENT``, ``DLR_POLICY``, the switch reasons
``SWITCH``) with the moves along them (``moves.lua``, which ``submit`` shares), the counters
(``metrics.lua`` after its constants, :func:`otpflow.flow.metrics.lua_prelude`), routing's
statistics and breakers (``routing.lua`` after :func:`otpflow.flow.routing.lua_prelude`), the
dashboard's counts (``dashboard.lua``) and ``prelude.lua``.

Each file opens with a comment naming its ``KEYS`` and ``ARGV`` and what else it reaches.
Every key is named in :mod:`otpflow.flow.keys`: passed in, or, for a bucket named by Redis's
clock (routing's statistics, the dashboard's counts) or by a flow id it read (the fraud
guard's codes whose chance has ended), through a Lua function rendered from
the key's own function there (:func:`otpflow.flow.keys.lua_builders`). No script joins a
key name together itself.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from redis import Redis
from redis.commands.core import Script

from otpflow.config.routing import RoutingSettings
from otpflow.flow import dashboard_store, keys, metrics, routing
from otpflow.flow.fraud import NO_CHANCE
from otpflow.flow.states import (
    ENDED_STEP,
    FLOW_TRANSITIONS,
    RUNNING_STEP,
    STEP_TRANSITIONS,
    TERMINAL_FLOW,
    UNSENT_STEP,
    SwitchReason,
    lua_dlr_policy,
    lua_enum,
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
def _moves() -> str:
    """The state machines and the moves along them (the prelude's and submit's)."""
    return (
        lua_table("STEP", STEP_TRANSITIONS)
        + lua_table("FLOW", FLOW_TRANSITIONS)
        + lua_set("FLOW_ENDED", TERMINAL_FLOW)
        + lua_set("STEP_ENDED", ENDED_STEP)
        + source("moves")
    )


@cache
def _counters() -> str:
    return metrics.lua_prelude() + source("metrics")


@cache
def _tables() -> str:
    return (
        _moves()
        + lua_set("STEP_RUNNING", RUNNING_STEP)
        + lua_set("STEP_UNSENT", UNSENT_STEP)
        + lua_dlr_policy()
        + lua_enum("SWITCH", SwitchReason)
        + _counters()
    )


def _routing(settings: RoutingSettings) -> str:
    return (
        keys.lua_builders()
        + routing.lua_prelude(settings)
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
    # a flow blocked in shadow mode moves along the tables; the guard counts what it refuses
    parts = ("admit", "create", "fraud", "submit")
    scripts["submit"] = (
        _moves()
        + _counters()
        + keys.lua_builders()
        + lua_set("FRAUD_NO_CHANCE", NO_CHANCE)
        + "".join(source(part) for part in parts)
    )
    for name in ("take_due", "later", "release_active"):
        scripts[name] = source(name)
    scripts["converted"] = _routing(settings) + source("converted")
    return {name: redis.register_script(text) for name, text in scripts.items()}
