"""Imports point down only: a producer pulls in no worker code, no web framework, no simulator."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Rooms by process, floors below them. Folder -> otpflow packages it must never import.
ROOMS = ("otpflow.api", "otpflow.cli", "otpflow.worker")
FORBIDDEN = {
    "config": (
        "otpflow.flow",
        "otpflow.producers",
        "otpflow.providers",
        "otpflow.simulator",
        *ROOMS,
    ),
    "flow": ("otpflow.producers", "otpflow.providers", "otpflow.simulator", *ROOMS),
    "providers": ("otpflow.producers", "otpflow.simulator", *ROOMS),
    "producers": ("otpflow.providers", "otpflow.simulator", *ROOMS),
    # the API and the worker are separate processes: neither imports the other
    "api": ("otpflow.worker", "otpflow.cli", "otpflow.simulator"),
    "worker": ("otpflow.api", "otpflow.cli", "otpflow.simulator"),
    "simulator": (
        "otpflow.config",
        "otpflow.flow",
        "otpflow.producers",
        "otpflow.providers",
        *ROOMS,
    ),
    "cli": (),  # the operator's room may import every other
}


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Every module ``path`` imports, relative imports resolved to their ``otpflow.*`` name.
    ``from pkg import name`` counts as ``pkg`` and ``pkg.name``: the name may be a module."""
    package = ["otpflow", *path.relative_to(root).parent.parts]
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                parent = ".".join(package[: len(package) - node.level + 1])
                base = f"{parent}.{node.module}" if node.module else parent
            if node.module:
                found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names if alias.name != "*"}
    return found


def test_relative_and_from_imports_are_resolved(tmp_path: Path) -> None:
    assert "otpflow.simulator.gateway" in imported_modules(ROOT / "simulator" / "app.py")
    nested = tmp_path / "worker" / "providers" / "base.py"
    nested.parent.mkdir(parents=True)
    nested.write_text(
        "from ..api import x\nfrom . import errors\nfrom otpflow import worker\n"
        "from otpflow.flow.keys import *\n"
    )
    found = imported_modules(nested, root=tmp_path)
    assert found == {
        "otpflow.worker.api",
        "otpflow.worker.api.x",
        "otpflow.worker.providers.errors",
        "otpflow",
        "otpflow.worker",
        "otpflow.flow.keys",
    }


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_imports_point_down(folder: str) -> None:
    for path in (ROOT / folder).rglob("*.py"):
        for module in imported_modules(path):
            assert not module.startswith(FORBIDDEN[folder]), f"{path} imports {module}"


def test_every_room_and_floor_is_covered() -> None:
    # a new top-level folder of the package gets its place in FORBIDDEN
    folders = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    assert folders - {"tests", "benchmarks", "examples"} == FORBIDDEN.keys()


def test_producer_import_pulls_in_no_worker_or_web_framework() -> None:
    code = (
        "import sys, otpflow.producers\n"
        "bad = [m for m in sys.modules if m.startswith(('otpflow.worker', 'otpflow.simulator',"
        " 'fastapi', 'uvicorn', 'starlette'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")


# redis-py's methods that write (or run a script, or send any command), whatever holds them: a
# client, a pipeline, a lock
REDIS_WRITES = frozenset(
    {
        *("set", "setex", "psetex", "setnx", "mset", "msetnx", "getset", "getdel", "getex"),
        *("incr", "incrby", "incrbyfloat", "decr", "decrby", "setrange", "setbit"),
        *("delete", "unlink", "expire", "expireat", "pexpire", "pexpireat", "persist"),
        *("rename", "renamenx", "copy", "restore", "move"),
        *("hset", "hsetnx", "hmset", "hdel", "hincrby", "hincrbyfloat"),
        *("lpush", "rpush", "lpushx", "rpushx", "lpop", "rpop", "lrem", "lset", "ltrim"),
        *("linsert", "lmove", "rpoplpush", "blpop", "brpop", "sadd", "srem", "spop", "smove"),
        *("zadd", "zrem", "zincrby", "zpopmin", "zpopmax", "zremrangebyscore"),
        *("zremrangebyrank", "zremrangebylex", "xadd", "xdel", "xtrim", "pfadd", "geoadd"),
        *("eval", "evalsha", "fcall", "register_script", "script_load", "execute_command"),
        *("pipeline", "transaction", "flushdb", "flushall"),
    }
)
# The one writer: the flow store (``….store``) and its parts (``….store.fraud`` and so on).
STORE_PARTS = frozenset({"fraud", "dashboard", "routing", "metrics"})
# Receivers, by their last name, whose methods share a name with a Redis write, and what they are:
NOT_A_REDIS_CLIENT = {
    "router": "FastAPI's APIRouter: .delete declares a route",
    "_stop": "a threading.Event",
    "_deadline": "a ContextVar",
}
# the demo's own database: its lease and emptying it, no flow state
OWN_DATABASE = {"cli/demo.py"}


def writes_through_the_store(receiver: str) -> bool:
    *_, owner, last = ["", *receiver.split(".")]
    return last == "store" or (owner == "store" and last in STORE_PARTS)


def redis_writes(source: str) -> list[str]:
    """Each call of a Redis write method in ``source``, on any receiver not allowed above."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        receiver = ast.unparse(node.func.value)
        allowed = writes_through_the_store(receiver) or (
            receiver.rsplit(".", 1)[-1] in NOT_A_REDIS_CLIENT
        )
        if node.func.attr in REDIS_WRITES and not allowed:
            found.append(f"{node.lineno}: {ast.unparse(node)[:80]}")
    return found


def test_a_write_is_found_on_any_receiver() -> None:
    source = (
        "pipe.hdel('k', 'f')\nclient.execute_command('SET', 'k', 1)\n"
        "self.redis.zremrangebyscore('k', 0, 1)\nrt.metrics.incr('n')\n"
        "api.otp.store.redis.set('k', 1)\n"
        "self.store.delete('f')\nrt.store.metrics.incr('n')\nstore.fraud.lift('w', 'b')\n"
    )
    assert [line.split(":")[0] for line in redis_writes(source)] == ["1", "2", "3", "4", "5"]


@pytest.mark.parametrize("folder", ["producers", "api", "worker", "cli", "config"])
def test_redis_is_written_only_by_the_store(folder: str) -> None:
    """Flows, limits and idempotency keys are written through flow.store, nowhere else."""
    for path in (ROOT / folder).rglob("*.py"):
        if str(path.relative_to(ROOT)) in OWN_DATABASE:
            continue
        writes = redis_writes(path.read_text())
        assert not writes, f"{path} writes Redis: {writes}"


def test_the_architecture_lists_every_room_and_floor() -> None:
    text = (ROOT / "ARCHITECTURE.md").read_text()
    listed = dict(re.findall(r"^\| `(\w+)/` \| `(otpflow\.\w+)` \|", text, flags=re.MULTILINE))
    assert listed.keys() == FORBIDDEN.keys()
    assert all(package == f"otpflow.{folder}" for folder, package in listed.items())
    # each file the walk-through names is there
    for named in set(
        re.findall(r"`((?:api|worker|cli|providers|producers|flow)/[\w/]+\.py)`", text)
    ):
        assert (ROOT / named).is_file(), named


def helper_bodies(path: Path) -> dict[str, str]:
    """A test module's top-level helpers (functions, fixtures, classes; no tests), each by the
    shape of its body without its docstring: a copy under another name still matches."""
    found = {}
    for node in ast.parse(path.read_text()).body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        body = node.body[1:] if ast.get_docstring(node) is not None else node.body
        if not node.name.startswith("test_") and body:
            found[ast.dump(ast.Module(body=body, type_ignores=[]))] = node.name
    return found


def test_a_test_helper_lives_once() -> None:
    """A helper two test modules need lives in tests/harness.py, fakes.py or a conftest."""
    seen: dict[str, str] = {}
    for path in sorted((ROOT / "tests").rglob("*.py")):
        where = str(path.relative_to(ROOT))
        for body, name in helper_bodies(path).items():
            assert body not in seen, f"{where}: {name} copies {seen.get(body)}"
            seen[body] = f"{where}: {name}"


LONGEST_FUNCTION = 60
LONGEST_MODULE = 400


def package_sources() -> list[Path]:
    return [path for folder in FORBIDDEN for path in sorted((ROOT / folder).rglob("*.py"))]


@pytest.mark.parametrize("path", package_sources(), ids=lambda path: str(path.relative_to(ROOT)))
def test_small_pieces(path: Path) -> None:
    """No function over ~60 lines; a module over ~400 says at its top why it stays one."""
    source = path.read_text()
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            assert length <= LONGEST_FUNCTION, f"{path}:{node.lineno} {node.name}: {length} lines"
    if source.count("\n") > LONGEST_MODULE:
        reason = re.search(r"^Why\b", ast.get_docstring(tree) or "", flags=re.MULTILINE)
        assert reason, f"{path}: over {LONGEST_MODULE} lines with no 'Why ...' in its docstring"
