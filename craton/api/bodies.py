"""JSON request bodies, parsed and checked once per request before any view sees them.

Views read bodies two ways (``json_body()`` by hand, flask-smorest's ``@blp.arguments``); both
get the value parsed here, so every endpoint refuses the same inputs the same way, naming the
field: JSON nested deeper than the limit (which would otherwise exhaust the parser's recursion
and answer 500), an integer longer than Python converts, and text that is not Unicode.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

from craton.errors import BadRequest, InvalidInput

WRAPPING = 3
"""How deep a body holds its variable values: ``[{"variables": {"key": value}}]``. A body may
nest that much deeper than a value may."""

_BRACKETS_ONLY = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [0] * 256
for _byte in b"[{":
    _STEP[_byte] = 1
for _byte in b"]}":
    _STEP[_byte] = -1
_SURROGATE_ESCAPE = re.compile(rb"\\[uU][dD][89a-fA-F][0-9a-fA-F]{2}")


def json_depth(raw: bytes) -> int:
    """How deeply arrays and objects nest in the JSON text ``raw`` (a scalar is 0), read from
    the text without parsing it. Brackets inside strings do not count; the text need not be
    valid JSON."""
    # Drop every string: escaped backslashes, then escaped quotes, then what lies between
    # quotes. What is left is structure, numbers and literals.
    outside = b"".join(raw.replace(b"\\\\", b"").replace(b'\\"', b"").split(b'"')[::2])
    steps = map(_STEP.__getitem__, outside.translate(None, _BRACKETS_ONLY))
    return max(itertools.accumulate(steps), default=0)


def parse_body(raw: bytes, max_value_depth: int) -> Any:
    """The JSON value of a request body, or a 4xx naming the field at fault: 400 for text that
    is not JSON (or not Unicode), 422 for JSON that nests deeper than ``max_value_depth`` plus
    :data:`WRAPPING` or holds an integer of more digits than Python converts."""
    limit = max_value_depth + WRAPPING
    # Counting openers is cheap; only a body with more of them than the limit is measured.
    if raw.count(b"[") + raw.count(b"{") > limit and (depth := json_depth(raw)) > limit:
        reason = (f"nests arrays and objects {depth} levels deep; at most {limit} are "
                  f"allowed (values may nest {max_value_depth}: [limits] max_json_depth)")
        raise InvalidInput(f"request body {reason}", fields={"body": reason})
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise BadRequest("request body is not valid JSON",
                         fields={"body": "not valid JSON"}) from None
    except ValueError:
        # Python refuses to convert integers of more than sys.get_int_max_str_digits() digits
        # (a guard against quadratic conversion): find which field holds one.
        value = json.loads(raw, parse_int=_int_or_oversized)
        where = first_path(value, lambda item: isinstance(item, _Oversized))
        if where is None:
            raise BadRequest("request body is not valid JSON",
                             fields={"body": "not valid JSON"}) from None
        reason = f"is an integer of more than {sys.get_int_max_str_digits()} digits"
        raise InvalidInput(f"{where}: {reason}", fields={where: reason}) from None
    if _SURROGATE_ESCAPE.search(raw):
        where = first_path(value, lambda item: isinstance(item, str) and not _encodes(item))
        if where is not None:
            reason = "holds text that is not valid Unicode (an unpaired \\ud800-\\udfff escape)"
            raise BadRequest(f"{where}: {reason}", fields={where: reason})
    return value


class _Oversized:
    """Stands in for an integer too long to convert, so its place can be named."""


def _int_or_oversized(text: str) -> int | _Oversized:
    if len(text.lstrip("-")) > sys.get_int_max_str_digits():
        return _Oversized()
    return int(text)


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def first_path(value: Any, wrong: Callable[[Any], bool]) -> str | None:
    """The path (``variables.role``, ``3.name``; ``body`` for the whole) of the first key or
    value in ``value`` for which ``wrong`` holds, or None. Iterative, so any depth is safe."""
    for path, item in _walk(value):
        if wrong(item):
            return path or "body"
    return None


def _walk(value: Any) -> Iterator[tuple[str, Any]]:
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        yield path, item
        if isinstance(item, dict):
            for key, child in reversed(item.items()):
                child_path = f"{path}.{key}" if path else str(key)
                stack.append((child_path, child))
                stack.append((child_path, key))
        elif isinstance(item, list):
            stack.extend((f"{path}.{index}" if path else str(index), child)
                         for index, child in reversed(list(enumerate(item))))
