"""Variables: values are stored as canonical JSON with a digest, every bad key or value is
reported at once, and ``key:value`` filters know which stored forms a value may match."""

from __future__ import annotations

import json
import math
import re
import textwrap
import time
from typing import Any

import pytest

from craton.config import LimitSettings
from craton.errors import InvalidInput
from craton.inventory.variables import encode_variables, parse_variables_file, value_candidates
from craton.values import canonical_json, value_digest

LIMITS = LimitSettings()


def test_encode_gives_canonical_json_and_digest() -> None:
    encoded = encode_variables({
        "role": "compute",
        "count": 3,
        "ratio": 4.0,
        "gpu": False,
        "owner": None,
        "tags": ["b", "a"],
        "nested": {"z": 1, "a": {"y": [1, 2], "b": "é"}},
    }, LIMITS)
    assert encoded["role"][0] == '"compute"'
    assert encoded["count"][0] == "3"
    assert encoded["ratio"][0] == "4.0"
    assert encoded["gpu"][0] == "false"
    assert encoded["owner"][0] == "null"
    assert encoded["tags"][0] == '["b","a"]', "list order is data, not sorted"
    assert encoded["nested"][0] == '{"a":{"b":"é","y":[1,2]},"z":1}'
    for text, digest in encoded.values():
        assert digest == value_digest(text)
        assert len(digest) == 20, "the digest column is VARCHAR(20)"


def test_equal_values_encode_alike_whatever_the_key_order() -> None:
    one = encode_variables({"v": {"a": 1, "b": [1, {"c": 2, "d": 3}]}}, LIMITS)
    two = encode_variables({"v": {"b": [1, {"d": 3, "c": 2}], "a": 1}}, LIMITS)
    assert one == two


def test_empty_variables_encode_to_nothing() -> None:
    assert encode_variables({}, LIMITS) == {}


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InvalidInput) as caught:
        encode_variables({
            "ok": 1,
            "groups": 2,
            "__ansible_x": 3,
            "a\nb": 4,
            "nan": math.nan,
            "inf": [1, {"deep": math.inf}],
            "obj": object(),
            "also_ok": "x",
        }, LIMITS)
    error = caught.value
    assert error.status == 422
    assert set(error.fields) == {"variables.groups", "variables.__ansible_x", "variables.a\nb",
                                 "variables.nan", "variables.inf", "variables.obj"}
    assert "reserved" in error.fields["variables.groups"]
    assert "NaN" in error.fields["variables.nan"]
    assert error.message.startswith("6 invalid fields in variables")


def test_one_problem_names_the_field_in_the_message() -> None:
    with pytest.raises(InvalidInput) as caught:
        encode_variables({"ok": 1, "hostvars": 2}, LIMITS)
    assert set(caught.value.fields) == {"variables.hostvars"}
    assert caught.value.message.startswith("variables.hostvars: ")


def test_field_prefix_names_the_item() -> None:
    """In a bulk request the caller learns which item's variables were wrong."""
    with pytest.raises(InvalidInput) as caught:
        encode_variables({"groups": 1}, LIMITS, field="3.variables")
    assert set(caught.value.fields) == {"3.variables.groups"}


@pytest.mark.parametrize("value", [["a", "list"], "text", 3, None])
def test_variables_must_be_an_object(value: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        encode_variables(value, LIMITS)
    assert caught.value.fields == {"variables": "must be an object"}


def test_unsortable_nested_keys_are_a_problem_not_a_crash() -> None:
    with pytest.raises(InvalidInput) as caught:
        encode_variables({"v": {1: "a", "b": 2}}, LIMITS)
    assert set(caught.value.fields) == {"variables.v"}


@pytest.mark.parametrize(("raw", "expected"), [
    ("compute", ['"compute"']),
    ("3", ['"3"', "3"]),
    ("4.0", ['"4.0"', "4.0"]),
    ("true", ['"true"', "true"]),
    ("null", ['"null"', "null"]),
    ('"x"', ['"\\"x\\""', '"x"']),
    ("[1, 2]", ['"[1, 2]"', "[1,2]"]),
    ('{"b": 1, "a": 2}', ['"{\\"b\\": 1, \\"a\\": 2}"', '{"a":2,"b":1}']),
    ("", ['""']),
    ("r1:a", ['"r1:a"']),
])
def test_value_candidates(raw: str, expected: list[str]) -> None:
    """``var=count:3`` matches a stored 3 and a stored "3"; text that is not JSON matches only
    the string."""
    assert value_candidates(raw) == expected


def test_value_candidates_match_what_encode_stores() -> None:
    stored = {key: text for key, (text, _) in encode_variables(
        {"count": 3, "name": "3", "on": True, "tags": [1, 2]}, LIMITS).items()}
    assert stored["count"] in value_candidates("3")
    assert stored["name"] in value_candidates("3")
    assert stored["on"] in value_candidates("true")
    assert stored["tags"] in value_candidates("[1,2]")


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_value_candidates_of_non_finite_numbers_are_only_text(raw: str) -> None:
    assert value_candidates(raw) == [json.dumps(raw)]


@pytest.mark.parametrize("raw", ["1" * 5000, "[" * 3000, "[" * 100_000, '{"a":' * 3000])
def test_value_candidates_of_hostile_input_are_only_text(raw: str) -> None:
    """A filter value comes straight from a query string: deeply nested or huge JSON must be
    matched as text, never raise (which the API would turn into a 500)."""
    assert value_candidates(raw) == [canonical_json(raw)]


# --- Limits ------------------------------------------------------------------------------------

SMALL = LimitSettings(max_value_bytes=100, max_variables=3, max_json_depth=2)


def deep(levels: int) -> Any:
    value: Any = "x"
    for _ in range(levels):
        value = {"a": value}
    return value


def test_values_within_the_limits_are_kept() -> None:
    encoded = encode_variables({"a": "x" * 98, "b": [[1]], "c": {"d": ["é" * 40]}}, SMALL)
    assert set(encoded) == {"a", "b", "c"}


@pytest.mark.parametrize(("value", "reason"), [
    ("x" * 99, "101 bytes as JSON; at most 100"),
    ("é" * 50, "102 bytes as JSON; at most 100"),
    ([[[1]]], "more than 2 levels deep"),
    (deep(100_000), "more than 2 levels deep"),
])
def test_values_past_the_limits_are_refused_naming_the_key(value: Any, reason: str) -> None:
    """Size counts UTF-8 bytes of the JSON encoding; depth is measured without recursion, so
    even a value 100,000 levels deep is refused rather than crashing the encoder."""
    with pytest.raises(InvalidInput) as caught:
        encode_variables({"ok": 1, "bad": value}, SMALL, field="2.variables")
    assert set(caught.value.fields) == {"2.variables.bad"}
    assert reason in caught.value.fields["2.variables.bad"]
    assert "[limits]" in caught.value.fields["2.variables.bad"]


def test_more_variables_than_the_limit_are_refused_naming_the_object() -> None:
    with pytest.raises(InvalidInput) as caught:
        encode_variables({f"v{i}": i for i in range(4)}, SMALL, field="variables")
    assert caught.value.fields == {
        "variables": "holds 4 variables; at most 3 are allowed ([limits] max_variables)"}


# --- Reference files ---------------------------------------------------------------------------

def alias_bomb(levels: int, width: int = 9) -> bytes:
    """The "billion laughs": each level a list of ``width`` aliases of the level below."""
    lines = ['lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}"] * width) + "]"
              for i in range(1, levels + 1)]
    return ("\n".join(lines) + "\n").encode()


def test_alias_bomb_is_refused_in_milliseconds() -> None:
    """9 levels of 9 aliases is 1 KB of YAML that expands to ~10^9 strings: minutes and
    gigabytes on every bundle before. It is refused before anything is built, naming the first
    variable that would expand past max_value_bytes."""
    content = alias_bomb(9)
    assert len(content) < 1024
    started = time.perf_counter()
    with pytest.raises(ValueError, match="variable 'lol4' expands to more than 65,536 bytes"):
        parse_variables_file(content, LIMITS)
    assert time.perf_counter() - started < 0.5


def test_normal_aliases_and_merge_keys_still_work() -> None:
    content = textwrap.dedent("""\
        defaults: &defaults {port: 22, user: root}
        web:
          <<: *defaults
          port: 80
        pair: [*defaults, *defaults]
        small_bomb: &two [*defaults, *defaults]
        bigger: [*two, *two, *two]
        """).encode()
    parsed = {key: json.loads(text) for key, text in parse_variables_file(content, LIMITS).items()}
    assert parsed["web"] == {"port": 80, "user": "root"}
    assert parsed["pair"] == [{"port": 22, "user": "root"}] * 2
    assert len(parsed["bigger"]) == 3 and parsed["bigger"][0] == parsed["pair"]


@pytest.mark.parametrize(("content", "reason"), [
    (b"a: " + b"[" * 100_000 + b"]" * 100_000, "variable 'a' nests arrays and objects more"),
    (b"a: " + b"[" * 33 + b"]" * 33, "more than 32 levels deep"),
    (b"a: &x [1, *x]\n", "variable 'a' holds alias *x inside the node it names"),
    (b"a: *nowhere\n", "no anchor defines"),
    (b"a: " + b"7" * 5000 + b"\n", "variable 'a' holds an integer of more than 4300 digits"),
    (b"a: " + b'"' + b"x" * 70_000 + b'"\n', "variable 'a' expands to more than"),
    (b"\n".join(b"v%d: 1" % i for i in range(1001)), "holds 1,001 variables; at most 1,000"),
])
def test_reference_files_obey_the_variable_limits(content: bytes, reason: str) -> None:
    """A 200 KB file of nested brackets crashed the whole process (the C YAML composer
    overflowed its stack); a recursive alias or a 5,000-digit integer raised errors nobody
    expected. Each is now a ValueError naming the variable."""
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_variables_file(content, LIMITS)


def test_a_reference_file_may_nest_as_deep_as_a_value_may() -> None:
    content = b"a: " + b"[" * 32 + b"]" * 32
    assert parse_variables_file(content, LIMITS) == {"a": "[" * 32 + "]" * 32}
