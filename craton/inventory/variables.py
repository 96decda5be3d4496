"""Variables of regions, groups and hosts: replace, merge (RFC 7396 style: null deletes) and
delete keys. A change bumps the owner's version, which is the ETag of its variables."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

import yaml
from sqlalchemy import inspect

from craton.config import LimitSettings
from craton.db.models import VARIABLE_MODELS, Group, Host, Region
from craton.errors import NotFound, invalid
from craton.inventory.resolve import PRIORITY
from craton.names import (
    HIDDEN,
    is_sensitive_name,
    tagged_key_problem,
    variable_key_form_problem,
    variable_key_problem,
)
from craton.values import canonical_json, utcnow, value_digest

Owner = Region | Group | Host
Encoded = dict[str, tuple[str, str]]
"""key → (canonical JSON, digest)"""

HIDDEN_JSON = canonical_json(HIDDEN)


class Sealer(Protocol):
    """Encrypts and decrypts sensitive values: the secrets backend."""

    def seal(self, plaintext: bytes) -> bytes: ...

    def open(self, sealed: bytes) -> bytes: ...

    def open_many(self, sealed: Sequence[bytes]) -> list[bytes]: ...


def is_sealed(key: str, marked: bool) -> bool:
    """Whether a value of ``key`` is stored sealed: it is named like a secret, or ``marked``."""
    return marked or is_sensitive_name(key)


def stored_form(key: str, text: str, sealer: Sealer, *, marked: bool = False
                ) -> tuple[str, str, str | None]:
    """(value_json, value_digest, sealed) of a value as stored: a sensitive one (by its name or
    ``marked``) is sealed, and "<hidden>" stands in its place — for every reader that does not
    unseal it, and for the digest that filters compare."""
    if is_sealed(key, marked):
        return HIDDEN_JSON, value_digest(HIDDEN_JSON), sealer.seal(text.encode()).decode()
    return text, value_digest(text), None


def unsealed(value_json: str, sealed: str | None, sealer: Sealer | None) -> str:
    """A stored value's canonical JSON: the sensitive value itself when ``sealer`` is given
    (the caller may reveal it), otherwise what is stored ("<hidden>" for a sensitive one)."""
    if sealed is None or sealer is None:
        return value_json
    return sealer.open(sealed.encode()).decode()


def unsealed_all(rows: Sequence[tuple[str, str | None]], sealer: Sealer | None) -> list[str]:
    """``unsealed`` of each (value_json, sealed), the sealed values opened at once (one
    round of concurrent requests when they are kept in Barbican)."""
    if sealer is None:
        return [value for value, _ in rows]
    opened = iter(sealer.open_many([sealed.encode() for _, sealed in rows
                                    if sealed is not None]))
    return [value if sealed is None else next(opened).decode() for value, sealed in rows]


def shown_variables(owner: Owner, sealer: Sealer | None) -> dict[str, Any]:
    """``owner``'s variables, sensitive ones unsealed when ``sealer`` is given."""
    return {row.key: json.loads(unsealed(row.value_json, row.sealed, sealer))
            for row in owner.variable_rows}


def check_marked(variables: Mapping[str, Any], sensitive: Collection[str]) -> None:
    """The keys marked sensitive must be among the keys written (with a value)."""
    unknown = [str(n) for n, key in enumerate(sensitive) if variables.get(key) is None]
    if unknown:
        # By position: an entry that is no key may be a value pasted in the wrong place.
        raise invalid({"sensitive": f"entries {', '.join(unknown)} (counted from 0) name no key "
                                    "this request sets"})


def value_depth(value: Any, stop_after: int) -> int:
    """How deeply arrays and objects nest in ``value`` (a scalar is 0), counted without
    recursion and no further than ``stop_after`` + 1, so a hostile value costs no more than
    an acceptable one."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping | list | tuple):
            depth += 1
            if depth > stop_after:
                return depth
            deepest = max(deepest, depth)
            stack.extend((child, depth) for child in
                         (item.values() if isinstance(item, Mapping) else item))
    return deepest


def encode_value(value: Any, limits: LimitSettings) -> tuple[str | None, str | None]:
    """(canonical JSON of ``value``, None), or (None, why it cannot be kept): not JSON, nested
    deeper than [limits] max_json_depth, or larger than max_value_bytes encoded."""
    if isinstance(value, Mapping | list | tuple):
        if value_depth(value, limits.max_json_depth) > limits.max_json_depth:
            return None, (f"nests arrays and objects more than {limits.max_json_depth} levels "
                          "deep ([limits] max_json_depth)")
        tagged = tagged_key_problem(value)
        if tagged is not None:
            return None, tagged
    try:
        text = canonical_json(value)
    except (TypeError, ValueError):
        return None, "must be valid JSON (NaN and Infinity are not)"
    # Characters are 1 to 4 bytes in UTF-8: encode only when the length leaves it open.
    if len(text) > limits.max_value_bytes or (
            len(text) * 4 > limits.max_value_bytes
            and len(text.encode()) > limits.max_value_bytes):
        return None, (f"is {len(text.encode()):,} bytes as JSON; at most "
                      f"{limits.max_value_bytes:,} are allowed ([limits] max_value_bytes)")
    return text, None


def too_many_problem(count: int, limits: LimitSettings) -> str | None:
    """Why an object cannot hold ``count`` variables (each bundle and job carries them all),
    or None."""
    if count <= limits.max_variables:
        return None
    return (f"holds {count:,} variables; at most {limits.max_variables:,} are allowed "
            "([limits] max_variables)")


def encode_variables(variables: Mapping[str, Any], limits: LimitSettings,
                     field: str = "variables") -> Encoded:
    """Validate keys and values and serialize each value canonically. All problems are
    reported at once, each under ``<field>.<key>`` (or ``<field>`` for too many)."""
    if not isinstance(variables, Mapping):
        raise invalid({field: "must be an object"})
    too_many = too_many_problem(len(variables), limits)
    if too_many is not None:
        raise invalid({field: too_many})
    problems: dict[str, str] = {}
    encoded: Encoded = {}
    for key, value in variables.items():
        problem = variable_key_problem(key)
        if problem is None:
            text, problem = encode_value(value, limits)
            if text is not None:
                encoded[key] = (text, value_digest(text))
        if problem is not None:
            problems[f"{field}.{key}"] = problem
    if problems:
        raise invalid(problems, " in variables")
    return encoded


def touch(owner: Owner) -> None:
    """Mark a stored ``owner`` changed so its version (and so its ETag) moves on at flush."""
    if inspect(owner).persistent:
        owner.updated_at = utcnow()


def replace_variables(owner: Owner, variables: Mapping[str, Any], limits: LimitSettings,
                      sealer: Sealer, sensitive: Collection[str] = ()) -> bool:
    """Make ``owner``'s variables exactly ``variables`` (those named like secrets, and those in
    ``sensitive``, sealed). Returns whether anything changed."""
    check_marked(variables, sensitive)
    return _apply(owner, encode_variables(variables, limits), limits, sealer, sensitive,
                  remove_others=True, deletions=())


def merge_variables(owner: Owner, patch: Mapping[str, Any], limits: LimitSettings,
                    sealer: Sealer, sensitive: Collection[str] = ()) -> bool:
    """Set the keys of ``patch``; a key whose value is null is deleted."""
    check_marked(patch, sensitive)
    deletions = tuple(key for key, value in patch.items() if value is None)
    for key in deletions:
        problem = variable_key_form_problem(key)
        if problem is not None:
            raise invalid({f"variables.{key}": problem})
    updates = encode_variables({k: v for k, v in patch.items() if v is not None}, limits)
    return _apply(owner, updates, limits, sealer, sensitive, remove_others=False,
                  deletions=deletions)


def set_variables(owner: Owner, variables: Mapping[str, Any], limits: LimitSettings,
                  sealer: Sealer) -> bool:
    """Set each key of ``variables`` to its value, null included (a value like any other to
    Ansible), keeping the owner's other keys. Returns whether anything changed."""
    return _apply(owner, encode_variables(variables, limits), limits, sealer, (),
                  remove_others=False, deletions=())


def delete_variable(owner: Owner, key: str) -> None:
    for row in owner.variable_rows:
        if row.key == key:
            owner.variable_rows.remove(row)
            touch(owner)
            return
    raise NotFound(f"variable {key!r} not set")


def _apply(owner: Owner, updates: Encoded, limits: LimitSettings, sealer: Sealer,
           sensitive: Collection[str], *, remove_others: bool,
           deletions: tuple[str, ...]) -> bool:
    if isinstance(owner, Group | Region) and PRIORITY in updates:
        problem = priority_problem(json.loads(updates[PRIORITY][0]))
        if problem is not None:
            raise invalid({f"variables.{PRIORITY}": problem})
    row_class = VARIABLE_MODELS[type(owner)]
    current = {row.key: row for row in owner.variable_rows}
    changed = False
    doomed = set(deletions) | (set(current) - set(updates) if remove_others else set())
    too_many = too_many_problem(len((set(current) - doomed) | set(updates)), limits)
    if too_many is not None:
        raise invalid({"variables": too_many})
    for key in sorted(doomed & set(current)):
        owner.variable_rows.remove(current[key])
        changed = True
    for key, (text, _) in updates.items():
        row = current.get(key)
        if row is not None and (row.sealed is not None) == is_sealed(key, key in sensitive) \
                and unsealed(row.value_json, row.sealed, sealer) == text:
            continue  # unchanged: sealing it again would store content for nothing
        value_json, digest, sealed = stored_form(key, text, sealer, marked=key in sensitive)
        if row is None:
            owner.variable_rows.append(row_class(key=key, value_json=value_json,
                                                 value_digest=digest, sealed=sealed))
        else:
            row.value_json, row.value_digest, row.sealed = value_json, digest, sealed
        changed = True
    if changed:
        touch(owner)
    return changed


def priority_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a group's (or a region's: Ansible's ``all``) priority: Ansible
    converts it with int() when it loads the inventory (Group.set_variable), failing on
    anything else, and orders a host's groups by it."""
    if isinstance(value, int) and not isinstance(value, bool):
        return None
    return "must be an integer: Ansible orders a host's groups by it and fails on anything else"


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


def parse_variables_file(content: bytes, limits: LimitSettings) -> dict[str, str]:
    """A YAML (or JSON) file of variables — a mapping, as Ansible requires of group_vars — as
    key → canonical JSON, under the same limits as variables sent to the API. Dates become ISO
    strings; anything JSON cannot hold is refused. Raises ValueError saying what is wrong."""
    try:
        _measure_yaml(content, limits)
        data = yaml.load(content, Loader=YAML_LOADER)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"must be a YAML mapping of variables, not a {type(data).__name__}")
    too_many = too_many_problem(len(data), limits)
    if too_many is not None:
        raise ValueError(too_many)
    encoded: dict[str, str] = {}
    for key, value in data.items():
        problem = variable_key_problem(key)
        if problem is not None:
            raise ValueError(f"variable {key!r} {problem}")
        try:
            text, problem = encode_value(_plain(value), limits)
        except TypeError:
            problem = "holds a value JSON cannot represent"
        if problem is not None:
            raise ValueError(f"variable {key!r} {problem}")
        encoded[key] = text
    return encoded


YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_OPENING = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_CLOSING = (yaml.SequenceEndEvent, yaml.MappingEndEvent)
_PLAIN_INTEGER = re.compile(r"[-+]?[0-9_]+")


def _measure_yaml(content: bytes, limits: LimitSettings) -> None:
    """Refuse, before any of it is built, a file that would cost too much to build.

    YAML aliases repeat a node without spelling it out again, so a kilobyte of nested aliases
    ("billion laughs") expands to gigabytes, and deep nesting overflows the C composer's
    stack. This reads the parser's events once (no recursion, no expansion), giving each node
    an estimate of its size as JSON — an alias costs what its anchor's node cost, remembered
    — and refuses a variable that would expand past [limits] max_value_bytes, nest past
    max_json_depth, or hold an integer longer than Python converts. What passes is built and
    checked exactly afterwards."""
    sizes: dict[str, int] = {}
    stack: list[list[Any]] = []  # open collections: [estimated size, anchor, children]
    key = "?"

    def variable() -> str:
        """What the event at hand is part of: a variable, once the parser is in its value."""
        in_value = len(stack) > 1 or (len(stack) == 1 and stack[0][2] % 2 == 1)
        return f"variable {key!r}" if in_value else "the file"

    def close(size: int, anchor: str | None, event: Any) -> None:
        nonlocal key
        if anchor is not None:
            sizes[anchor] = size
        if not stack:
            return
        parent = stack[-1]
        parent[0] += size + 1
        parent[2] += 1
        if len(stack) == 1 and parent[2] % 2:  # a key of the top-level mapping
            key = event.value if isinstance(event, yaml.ScalarEvent) else "?"
        elif len(stack) == 1 and size > limits.max_value_bytes:
            raise ValueError(f"variable {key!r} expands to more than "
                             f"{limits.max_value_bytes:,} bytes ([limits] max_value_bytes)")

    for event in yaml.parse(content, Loader=YAML_LOADER):
        if isinstance(event, yaml.ScalarEvent):
            if (event.implicit[0] and len(event.value) > sys.get_int_max_str_digits()
                    and _PLAIN_INTEGER.fullmatch(event.value)
                    and len(event.value.replace("_", "").lstrip("+-"))
                    > sys.get_int_max_str_digits()):
                raise ValueError(f"{variable()} holds an integer of more than "
                                 f"{sys.get_int_max_str_digits()} digits")
            close(len(event.value) + 2, event.anchor, event)
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor in {anchor for _, anchor, _ in stack}:
                raise ValueError(f"{variable()} holds alias *{event.anchor} inside the node "
                                 "it names (a recursive structure JSON cannot hold)")
            if event.anchor not in sizes:
                raise ValueError(f"not valid YAML: {variable()} holds alias *{event.anchor}, "
                                 "which no anchor defines before it")
            close(sizes[event.anchor], None, event)
        elif isinstance(event, _OPENING):
            if len(stack) > limits.max_json_depth:
                raise ValueError(f"{variable()} nests arrays and objects more than "
                                 f"{limits.max_json_depth} levels deep ([limits] "
                                 "max_json_depth)")
            stack.append([2, event.anchor, 0])
        elif isinstance(event, _CLOSING):
            size, anchor, _ = stack.pop()
            close(size, anchor, event)


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
