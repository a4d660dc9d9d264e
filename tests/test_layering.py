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
    """Every module ``path`` imports, relative imports resolved to their ``otpflow.*`` name."""
    package = ["otpflow", *path.relative_to(root).parent.parts]
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1])
            names = [node.module] if node.module else [alias.name for alias in node.names]
            found |= {f"{base}.{name}" for name in names}
    return found


def test_relative_imports_are_resolved(tmp_path: Path) -> None:
    assert "otpflow.simulator.gateway" in imported_modules(ROOT / "simulator" / "app.py")
    nested = tmp_path / "worker" / "providers" / "base.py"
    nested.parent.mkdir(parents=True)
    nested.write_text("from ..api import x\nfrom . import errors\n")
    found = imported_modules(nested, root=tmp_path)
    assert found == {"otpflow.worker.api", "otpflow.worker.providers.errors"}


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


WRITES = {"set", "setex", "delete", "incr", "hincrby", "expire", "hset", "pipeline", "lpush"}
WRITES |= {"rpush", "zadd", "zrem", "eval", "evalsha", "flushdb", "register_script"}
# the demo's own database: its lease and emptying it, no flow state
OWN_DATABASE = {"cli/demo.py"}


@pytest.mark.parametrize("folder", ["producers", "api", "worker"])
def test_redis_is_written_only_by_the_store(folder: str) -> None:
    """Flows, limits and idempotency keys are written through flow.store, nowhere else."""
    for path in (ROOT / folder).rglob("*.py"):
        if str(path.relative_to(ROOT)) in OWN_DATABASE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                receiver = ast.unparse(node.func.value)
                write = node.func.attr in WRITES and "redis" in receiver.lower()
                assert not write, f"{path}:{node.lineno} writes Redis: {ast.unparse(node)[:80]}"


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
