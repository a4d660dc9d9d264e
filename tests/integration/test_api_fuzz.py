"""Fuzz the live HTTP API from its own OpenAPI schema with schemathesis.

Every operation in ``/openapi.json`` gets a bounded, deterministic run of generated requests
(schema examples, coverage cases and up to ``MAX_EXAMPLES`` fuzzed ones, valid and invalid),
each sent with the test workspace's API key. Every response must not be a 5xx and must conform
to the schema: a documented status code, a documented content type and a body matching the
response schema for that status.

A ``$ref`` the document cannot resolve makes schemathesis skip that part of the schema (it only
warns), so the fuzz would silently stop exercising it: every reference must resolve first.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from harness import HEADERS, System

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 30  # fuzzed cases per operation, on top of the schema's examples and coverage
SEED = 20240611  # fixed, with deterministic generation: every run sends the same requests
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def api_schema(system: System) -> Iterator[schemathesis.BaseSchema]:
    """The schema the running API serves, with the API key on every generated request."""
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "base-url": system.stack.api_url,
            "headers": HEADERS,
            "request-timeout": 10,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
            "cache": {"enabled": False},  # nothing written under the working directory
        }
    )
    yield schemathesis.openapi.from_url(
        f"{system.stack.api_url}/openapi.json", config=config, timeout=10
    )
    # the fuzz may have used up this second's requests of the workspace (a per-second limit):
    # the next test on the shared system starts with a fresh second
    time.sleep(1.1)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_api_conforms_to_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=HEADERS, checks=CHECKS)


def unresolvable_refs(document: Any) -> list[str]:
    """Every local ``$ref`` in an OpenAPI document that names no part of it, with its location.

    A ``$ref`` is resolved against the document, as OpenAPI 3.1 does for a schema without ``$id``:
    ``#/$defs/X`` inside an inline request body names ``$defs`` at the document's root.
    """
    found: list[str] = []

    def resolves(pointer: str) -> bool:
        node = document
        for raw in pointer.removeprefix("#").split("/")[1:]:
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return False
        return True

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#") and not resolves(ref):
                found.append(f"{where}: {ref}")
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}/{index}")

    walk(document, "#")
    return found


def test_schema_references_resolve(system: System) -> None:
    document = httpx.get(f"{system.stack.api_url}/openapi.json", timeout=10).json()
    missing = unresolvable_refs(document)
    assert not missing, "unresolvable $ref in /openapi.json:\n" + "\n".join(missing)
