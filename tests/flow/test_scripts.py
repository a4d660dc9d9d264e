"""The store's Lua: one file per script, each saying what it takes, naming no key itself, and
answering only in the kinds Python knows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import redis

from otpflow.config.routing import RoutingSettings
from otpflow.flow import keys, metrics, routing, scripts
from otpflow.flow.states import (
    DLR_POLICY,
    ENDED_STEP,
    FLOW_TRANSITIONS,
    RUNNING_STEP,
    STEP_TRANSITIONS,
    UNSENT_STEP,
    FlowEvent,
    FlowStatus,
    Kind,
    StepEvent,
    StepStatus,
    SwitchReason,
    lua_dlr_policy,
)

LUA = Path(scripts.__file__).parent / "lua"
FILES = sorted(LUA.glob("*.lua"))


def test_every_script_is_a_file_and_every_file_a_script() -> None:
    names = {path.stem for path in FILES}
    used = set(scripts.TRANSITIONS) | {"prelude", "admit", "create", "submit"}
    used |= {"take_due", "later", "release_active", "fraud", "converted", "routing", "dashboard"}
    used |= {"moves", "metrics"}
    assert names == used


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_each_script_opens_by_naming_what_it_takes(path: Path) -> None:
    opening = "\n".join(line for line in path.read_text().splitlines()[:8] if line.startswith("--"))
    # a transition takes the prelude's KEYS and ARGV[1-3], then says its own
    assert ("KEYS" in opening or "prelude" in opening) and "ARGV" in opening, path.name


def code_of(path: Path) -> str:
    """A script without its comments."""
    return "\n".join(line.split("--")[0] for line in path.read_text().splitlines())


# Ways a script could join a key name together: a key-like name (FLOW_KEY, KEYS[1], a
# prefix) on either side of `..`; a concatenation as a command's key (its first argument), or
# assigned to a variable named like a key; the key prefix itself in a literal.
KEY_NAME = r"(?:\b\w*(?:key|KEY|prefix|PREFIX)\w*(?:\[[^\]]*\])?)"
BUILDS_A_KEY = (
    KEY_NAME + r"\s*\.\.",
    r"\.\.\s*" + KEY_NAME,
    r"redis\.call\(\s*'\w+'\s*,\s*[^,)]*\.\.",
    r"\b\w*(?:key|KEY)\w*\s*=[^=][^\n]*\.\.",
    re.escape(f"'{keys.PREFIX}:"),
)


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_no_script_builds_a_key_name(path: Path) -> None:
    # key names live in flow/keys.py: a script gets every key it touches in KEYS, or names a
    # bucket with a builder rendered from keys.py (keys.lua_builders)
    code = code_of(path)
    for pattern in BUILDS_A_KEY:
        assert not re.search(pattern, code), f"{path.name}: {pattern}"


@pytest.mark.parametrize(
    "code",
    [
        "local key = DASHBOARD_STATS_KEY[1] .. workspace",
        "local key = ROUTING_STATS_PREFIX .. math.floor(now)",
        "redis.call('HINCRBY', 'otpflow:dash:' .. workspace, what, 1)",
        "redis.call('GET', KEYS[1] .. ':code')",
        "local stats_key = prefix_of(x) .. bucket",
    ],
)
def test_a_key_joined_together_is_caught(code: str) -> None:
    assert any(re.search(pattern, code) for pattern in BUILDS_A_KEY), code


def test_the_rendered_key_builders_name_keys_as_keys_py_does(redis_client: redis.Redis) -> None:
    built = redis_client.eval(
        keys.lua_builders()
        + "return {routing_stats_key(math.floor(1712345678.9 / 40)),"
        + " dashboard_stats_key('ws-1', math.floor(1712345678.9 / 600))}",
        0,
    )
    assert [name.decode() for name in built] == [
        keys.routing_stats(1712345678 // 40),
        keys.dashboard_stats("ws-1", 1712345678 // 600),
    ]


def test_a_key_that_cannot_be_rendered_for_lua_is_refused() -> None:
    # the idempotency key hashes its parameter: Lua could not name it the same way
    with pytest.raises(ValueError):
        keys._lua_builder("idempotency_key", keys.idempotency, ("workspace", "key"))


# What a script reaches beyond its KEYS, and the word its opening comment must name it by.
REACHED = {
    "verify_budget": ("get('verify_budget')",),
    "active": ("release_recipients(", "close_steps(", "advance("),
    "breaker": ("breaker_result(",),
    "routing": ("route_step(", "route_count(", "route_latency("),
    "dashboard": ("dash_step(", "dash_delivered(", "dash_count(", "advance("),
}


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_each_script_names_the_keys_it_reaches_through_others(path: Path) -> None:
    lines = path.read_text().splitlines()
    body = next(n for n, line in enumerate(lines) if not line.startswith("--"))
    opening = "\n".join(lines[:body])
    code = code_of(path)
    for word, calls in REACHED.items():
        if any(call in code for call in calls):
            assert word in opening, f"{path.name} reaches {word} keys without saying so"


def test_every_kind_a_script_answers_is_a_kind() -> None:
    answered = set()
    for path in FILES:
        answered |= set(re.findall(r"(?:return \{|ended\()'([a-z_]+)'", path.read_text()))
    assert answered and answered <= {kind.value for kind in Kind}


def test_the_report_policy_is_rendered_for_lua_from_the_one_table() -> None:
    rendered = lua_dlr_policy()
    for status, (event, reason) in DLR_POLICY.items():
        assert f'["{status}"] = {{"{event or ""}", "{reason or ""}"}}' in rendered
    assert "DLR_POLICY" in scripts.prelude()


STATUSES = {status.value for status in (*StepStatus, *FlowStatus)}


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_no_script_copies_a_status_set(path: Path) -> None:
    # `x == 'sending' or x == 'sent'` is a set of states.py's, rendered: STEP_RUNNING[x]
    code = code_of(path)
    pairs = re.findall(r"[=~]=\s*'(\w+)'\s+(?:or|and)\s+[^\n]*?[=~]=\s*'(\w+)'", code)
    copied = [pair for pair in pairs if set(pair) <= STATUSES]
    assert not copied, f"{path.name}: {copied}"


def test_the_step_sets_are_rendered_and_used() -> None:
    prelude = scripts.prelude()
    for name in ("STEP_ENDED", "STEP_RUNNING", "STEP_UNSENT", "FLOW_ENDED"):
        assert f"local {name} = " in prelude
        assert f"{name}[" in "".join(code_of(path) for path in FILES), f"{name} is not used"
    # every step status is waiting, running or ended (skipped: ended, having sent nothing)
    assert ENDED_STEP | RUNNING_STEP | {StepStatus.PENDING} == set(StepStatus)
    assert not ENDED_STEP & RUNNING_STEP and UNSENT_STEP - {StepStatus.PENDING} <= ENDED_STEP


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_a_status_is_written_only_by_a_move_along_the_tables(path: Path) -> None:
    code = code_of(path)
    assert not re.search(r"status',\s*'", code), path.name
    assert not re.search(r"sset\(\w+,\s*'status'", code), path.name
    moves = re.findall(r"(?:step_to|move_step)\([^)]*'(\w+)'\)", code)
    assert set(moves) <= {event.value for event in StepEvent}, path.name
    moves = re.findall(r"(?:flow_to|move_flow)\([^)]*'(\w+)'\)", code)
    assert set(moves) <= {event.value for event in FlowEvent}, path.name


def test_every_status_can_be_reached_by_a_listed_transition() -> None:
    assert set(FLOW_TRANSITIONS.values()) == set(FlowStatus) - {FlowStatus.QUEUED}
    assert set(STEP_TRANSITIONS.values()) == set(StepStatus) - {StepStatus.PENDING}


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_every_switch_reason_comes_from_states(path: Path) -> None:
    code = code_of(path)
    assert not re.search(r"advance\(\w+,\s*'", code), path.name
    written = set(re.findall(r"'reason',\s*'(\w+)'", code))
    assert not written & {reason.value for reason in SwitchReason}, path.name


def test_the_switch_reasons_are_rendered_from_states() -> None:
    assert "local SWITCH = {TIMEOUT" in scripts.prelude()
    used = set(re.findall(r"SWITCH\.(\w+)", "".join(code_of(path) for path in FILES)))
    assert used and used <= {reason.name for reason in SwitchReason}


def test_no_lua_lives_in_a_python_module() -> None:
    for module in Path(scripts.__file__).parent.glob("*.py"):
        assert "redis.call" not in module.read_text(), module.name


def test_the_breaker_states_and_cooldowns_are_rendered_once() -> None:
    code = code_of(LUA / "routing.lua")
    assert not {"'open'", "'closed'", "'half_open'", "2 ^"} & set(re.findall(r"'\w+'|2 \^", code))
    assert 'local BREAKER = {CLOSED = "closed"' in routing.lua_prelude(RoutingSettings())


def test_lua_and_python_wait_the_same_cooldown(redis_client: redis.Redis) -> None:
    settings = RoutingSettings(breaker_cooldown_seconds=0.3)
    head = routing.lua_prelude(settings) + scripts.source("routing")
    for opened in range(7):
        lua = redis_client.eval(head + f"return tostring(breaker_cooldown({opened}))", 0)
        assert float(lua) == routing.breaker_cooldown(0.3, opened), opened
    assert routing.breaker_cooldown(0.3, 20) == 0.3 * 8


def test_the_counters_are_one_lua_file_rendered_with_python_constants() -> None:
    rendered = metrics.lua_prelude()
    assert "local METRICS_TTL = " in rendered and "local LATENCY_BUCKETS = " in rendered
    assert "function" not in rendered
    assert "local function metrics_count(key, name)" in scripts.prelude()
