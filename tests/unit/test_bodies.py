"""Request bodies are parsed and checked in one place: nesting is measured from the text before
anything parses it, integers too long to convert and text that is not Unicode are refused,
each naming the field that holds it."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from craton.api.bodies import WRAPPING, json_depth, parse_body
from craton.errors import BadRequest, InvalidInput

DEPTH = 4


@pytest.mark.parametrize(("text", "depth"), [
    ("1", 0),
    ('"[[[["', 0),
    ("[]", 1),
    ('{"a": [1, {"b": []}]}', 4),
    ('["]", "\\"[", "\\\\", [[]]]', 3),
    ('{"k\\\\": "v\\\\\\"[[["}', 1),
    ("[" * 5000 + "]" * 5000, 5000),
    ("[[[", 3),
])
def test_json_depth_is_read_from_the_text(text: str, depth: int) -> None:
    """Brackets inside strings (escaped quotes and backslashes included) do not count; the
    text need not even be valid JSON."""
    assert json_depth(text.encode()) == depth


def test_parse_body_gives_the_json_value() -> None:
    body = {"name": "h", "variables": {"v": [[[[1]]]]}, "big": 10**30, "text": "é \U0001f600"}
    assert parse_body(json.dumps(body).encode(), DEPTH) == body


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def test_a_body_may_nest_its_values_as_deep_as_the_limit_allows() -> None:
    deepest = [{"variables": {"v": nested(DEPTH)}}]
    assert parse_body(json.dumps(deepest).encode(), DEPTH) == deepest


@pytest.mark.parametrize("depth", [DEPTH + WRAPPING + 1, 990, 100_000])
def test_deeper_bodies_are_refused_without_parsing(depth: int) -> None:
    """Past the limit (a value's depth plus the objects that hold values) a body is 422
    naming it, in milliseconds even 100,000 levels deep, where parsing would exhaust
    Python's recursion (a 500 before)."""
    raw = ("[" * depth + "]" * depth).encode()
    started = time.perf_counter()
    with pytest.raises(InvalidInput) as caught:
        parse_body(raw, DEPTH)
    assert time.perf_counter() - started < 1
    assert set(caught.value.fields) == {"body"}
    assert "max_json_depth" in caught.value.message


@pytest.mark.parametrize(("body", "field"), [
    ('{"name": 1%s}', "name"),
    ('[{"name": "a"}, {"name": "b", "ssh_port": -1%s}]', "1.ssh_port"),
    ('{"variables": {"v": [0, 1%s]}}', "variables.v.1"),
    ("1%s", "body"),
])
def test_integers_longer_than_python_converts_are_422_naming_the_field(body: str,
                                                                       field: str) -> None:
    """A 5,000-digit integer made json.loads raise a plain ValueError (a 500 before)."""
    with pytest.raises(InvalidInput) as caught:
        parse_body((body % ("0" * 5000)).encode(), DEPTH)
    assert caught.value.fields == {field: "is an integer of more than 4300 digits"}


def test_an_integer_of_4300_digits_is_a_number() -> None:
    assert parse_body(("9" * 4300).encode(), DEPTH) == int("9" * 4300)


@pytest.mark.parametrize(("body", "field"), [
    ('{"description": "\\ud800"}', "description"),
    ('{"variables": {"\\udfff": 1}}', "variables.\udfff"),
    ('[1, ["ok", "\\uDBFFx"]]', "1.1"),
])
def test_lone_surrogates_are_400_naming_the_field(body: str, field: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_body(body.encode(), DEPTH)
    assert set(caught.value.fields) == {field}


@pytest.mark.parametrize("raw", [b'{"name": ', b"\xff\xfe\x00", b"", b"[1,]", b"NaNa"])
def test_text_that_is_not_json_is_400(raw: bytes) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_body(raw, DEPTH)
    assert caught.value.fields == {"body": "not valid JSON"}
