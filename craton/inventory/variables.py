"""Variables of regions, groups and hosts: replace, merge (RFC 7396 style: null deletes) and
delete keys. A change bumps the owner's version, which is the ETag of its variables."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import yaml
from sqlalchemy import inspect

from craton.db.models import (
    VARIABLE_MODELS,
    Group,
    Host,
    Region,
    canonical_json,
    utcnow,
    value_digest,
)
from craton.errors import NotFound, invalid
from craton.inventory.names import variable_key_problem
from craton.inventory.resolve import PRIORITY

Owner = Region | Group | Host
Encoded = dict[str, tuple[str, str]]
"""key → (canonical JSON, digest)"""


def encode_variables(variables: Mapping[str, Any], field: str = "variables") -> Encoded:
    """Validate keys and values and serialize each value canonically. All problems are
    reported at once, each under ``<field>.<key>``."""
    if not isinstance(variables, Mapping):
        raise invalid({field: "must be an object"})
    problems: dict[str, str] = {}
    encoded: Encoded = {}
    for key, value in variables.items():
        problem = variable_key_problem(key)
        if problem is None:
            try:
                text = canonical_json(value)
            except (TypeError, ValueError):
                problem = "must be valid JSON (NaN and Infinity are not)"
            else:
                encoded[key] = (text, value_digest(text))
        if problem is not None:
            problems[f"{field}.{key}"] = problem
    if problems:
        raise invalid(problems, " in variables")
    return encoded


def variables_of(owner: Owner) -> dict[str, Any]:
    return {row.key: row.value for row in owner.variable_rows}


def touch(owner: Owner) -> None:
    """Mark a stored ``owner`` changed so its version (and so its ETag) moves on at flush."""
    if inspect(owner).persistent:
        owner.updated_at = utcnow()


def replace_variables(owner: Owner, variables: Mapping[str, Any]) -> bool:
    """Make ``owner``'s variables exactly ``variables``. Returns whether anything changed."""
    return _apply(owner, encode_variables(variables), remove_others=True, deletions=())


def merge_variables(owner: Owner, patch: Mapping[str, Any]) -> bool:
    """Set the keys of ``patch``; a key whose value is null is deleted."""
    deletions = tuple(key for key, value in patch.items() if value is None)
    for key in deletions:
        problem = variable_key_problem(key)
        if problem is not None:
            raise invalid({f"variables.{key}": problem})
    updates = encode_variables({k: v for k, v in patch.items() if v is not None})
    return _apply(owner, updates, remove_others=False, deletions=deletions)


def delete_variable(owner: Owner, key: str) -> None:
    for row in owner.variable_rows:
        if row.key == key:
            owner.variable_rows.remove(row)
            touch(owner)
            return
    raise NotFound(f"variable {key!r} not set")


def _apply(owner: Owner, updates: Encoded, *, remove_others: bool,
           deletions: tuple[str, ...]) -> bool:
    if isinstance(owner, Group) and PRIORITY in updates:
        value = json.loads(updates[PRIORITY][0])
        if not isinstance(value, int) or isinstance(value, bool):
            raise invalid({f"variables.{PRIORITY}": "must be an integer: Ansible orders a "
                                                    "host's groups by it"})
    row_class = VARIABLE_MODELS[type(owner)]
    current = {row.key: row for row in owner.variable_rows}
    changed = False
    doomed = set(deletions) | (set(current) - set(updates) if remove_others else set())
    for key in sorted(doomed & set(current)):
        owner.variable_rows.remove(current[key])
        changed = True
    for key, (text, digest) in updates.items():
        row = current.get(key)
        if row is None:
            owner.variable_rows.append(row_class(key=key, value_json=text, value_digest=digest))
            changed = True
        elif row.value_json != text:
            row.value_json, row.value_digest = text, digest
            changed = True
    if changed:
        touch(owner)
    return changed


def value_candidates(raw: str) -> list[str]:
    """The stored forms a ``key:value`` filter value may match: the text as a JSON string
    and, if it parses as JSON, that value too (so ``count:3`` matches 3 and "3")."""
    forms = [canonical_json(raw)]
    try:
        text = canonical_json(json.loads(raw))
    except (ValueError, RecursionError):
        return forms
    if text not in forms:
        forms.append(text)
    return forms


def parse_variables_file(content: bytes) -> dict[str, str]:
    """A YAML (or JSON) file of variables — a mapping, as Ansible requires of group_vars — as
    key → canonical JSON. Dates become ISO strings; anything JSON cannot hold is refused.
    Raises ValueError saying what is wrong."""
    try:
        data = yaml.load(content, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"must be a YAML mapping of variables, not a {type(data).__name__}")
    encoded: dict[str, str] = {}
    for key, value in data.items():
        problem = variable_key_problem(key)
        if problem is not None:
            raise ValueError(f"variable {key!r} {problem}")
        try:
            encoded[key] = canonical_json(_plain(value))
        except (TypeError, ValueError):
            raise ValueError(f"variable {key!r} holds a value JSON cannot represent") from None
    return encoded


def _plain(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(type(value).__name__)
