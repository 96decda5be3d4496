"""The API reference: what /v1/openapi.json serves is the checked-in api-ref/openapi.json, and
it documents every route the app answers, each operation with a summary."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from craton.api import create_app
from craton.config import Settings
from craton.db.session import Database

REPO = Path(__file__).resolve().parents[2]
CHECKED_IN = REPO / "api-ref" / "openapi.json"
HTTP_METHODS = {"get", "put", "post", "delete", "patch"}
# Routes that are not part of the API itself.
NOT_OPERATIONS = {"/v1/openapi.json"}


@pytest.fixture(scope="module")
def spec_app() -> Flask:
    """The document does not depend on data, so one app over an in-memory database will do."""
    return create_app(Settings(), database=Database("sqlite://"))


@pytest.fixture(scope="module")
def served(spec_app: Flask) -> dict[str, Any]:
    response = spec_app.test_client().get("/v1/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def openapi_path(rule: str) -> str:
    """Flask's /v1/hosts/<int:host_id> as OpenAPI's /v1/hosts/{host_id}."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, operation)
            for path, item in document["paths"].items()
            for method, operation in item.items() if method in HTTP_METHODS]


def test_served_document_equals_the_checked_in_one(served: dict[str, Any]) -> None:
    checked_in = json.loads(CHECKED_IN.read_text())
    assert served == checked_in, (
        "api-ref/openapi.json is stale: regenerate it with "
        "`.venv/bin/craton-manage api openapi > api-ref/openapi.json`")


def test_document_describes_craton(served: dict[str, Any]) -> None:
    assert served["openapi"] == "3.0.3"
    assert served["info"]["title"] == "Craton"
    assert served["info"]["description"]
    assert all(path.startswith("/v1/") for path in served["paths"])


def test_every_route_is_documented(spec_app: Flask, served: dict[str, Any]) -> None:
    """Each path and method the app answers under /v1 is in the document."""
    routes = {
        (openapi_path(rule.rule), method.lower())
        for rule in spec_app.url_map.iter_rules()
        if rule.rule.startswith("/v1/") and rule.rule not in NOT_OPERATIONS
        for method in rule.methods or () if method.lower() in HTTP_METHODS
    }
    documented = {(path, method) for path, method, _ in operations(served)}
    assert len(routes) > 40
    assert routes - documented == set()
    assert documented - routes == set(), "documented operations the app does not answer"


def test_every_operation_has_a_summary(served: dict[str, Any]) -> None:
    missing = [f"{method.upper()} {path}" for path, method, operation in operations(served)
               if not operation.get("summary", "").strip()]
    assert missing == []


def test_every_path_parameter_is_declared(served: dict[str, Any]) -> None:
    """A client generator needs each {name} in a path declared as a path parameter."""
    undeclared = []
    for path, item in served["paths"].items():
        wanted = set(re.findall(r"{([^}]+)}", path))
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            declared = {p["name"] for p in item.get("parameters", []) + operation.get(
                "parameters", []) if p.get("in") == "path"}
            if wanted - declared:
                undeclared.append(f"{method.upper()} {path}: {sorted(wanted - declared)}")
    assert undeclared == []


def test_every_schema_reference_resolves(served: dict[str, Any]) -> None:
    schemas = set(served["components"]["schemas"])
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(served)))
    assert refs
    assert refs - schemas == set()
