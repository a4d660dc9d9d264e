"""The store's Lua: one file per script, each saying what it takes, naming no key itself, and
answering only in the kinds Python knows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from otpflow.flow import scripts
from otpflow.flow.states import DLR_POLICY, Kind, lua_dlr_policy

LUA = Path(scripts.__file__).parent / "lua"
FILES = sorted(LUA.glob("*.lua"))


def test_every_script_is_a_file_and_every_file_a_script() -> None:
    names = {path.stem for path in FILES}
    used = set(scripts.TRANSITIONS) | {"prelude", "admit", "create", "submit"}
    used |= {"take_due", "later", "release_active", "fraud", "converted", "routing", "dashboard"}
    assert names == used


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_each_script_opens_by_naming_what_it_takes(path: Path) -> None:
    opening = "\n".join(line for line in path.read_text().splitlines()[:8] if line.startswith("--"))
    # a transition takes the prelude's KEYS and ARGV[1-3], then says its own
    assert ("KEYS" in opening or "prelude" in opening) and "ARGV" in opening, path.name


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_no_script_builds_a_key_name(path: Path) -> None:
    # key names live in flow/keys.py: a script gets every key it touches in KEYS
    code = "\n".join(line.split("--")[0] for line in path.read_text().splitlines())
    assert not re.search(r"_KEY\s*\.\.", code), path.name


def test_every_kind_a_script_answers_is_a_kind() -> None:
    answered = set()
    for path in FILES:
        answered |= set(re.findall(r"(?:return \{|ended\()'([a-z_]+)'", path.read_text()))
    assert answered and answered <= {kind.value for kind in Kind}


def test_the_report_policy_is_rendered_for_lua_from_the_one_table() -> None:
    rendered = lua_dlr_policy()
    for status, (event, reason) in DLR_POLICY.items():
        assert f'["{status}"] = {{"{event or ""}", "{reason}"}}' in rendered
    assert "DLR_POLICY" in scripts.prelude()
