"""Variables: values are stored as canonical JSON with a digest, every bad key or value is
reported at once, and ``key:value`` filters know which stored forms a value may match."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from craton.db.models import canonical_json, value_digest
from craton.errors import InvalidInput
from craton.inventory.variables import encode_variables, value_candidates


def test_encode_gives_canonical_json_and_digest() -> None:
    encoded = encode_variables({
        "role": "compute",
        "count": 3,
        "ratio": 4.0,
        "gpu": False,
        "owner": None,
        "tags": ["b", "a"],
        "nested": {"z": 1, "a": {"y": [1, 2], "b": "é"}},
    })
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
    one = encode_variables({"v": {"a": 1, "b": [1, {"c": 2, "d": 3}]}})
    two = encode_variables({"v": {"b": [1, {"d": 3, "c": 2}], "a": 1}})
    assert one == two


def test_empty_variables_encode_to_nothing() -> None:
    assert encode_variables({}) == {}


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InvalidInput) as caught:
        encode_variables({
            "ok": 1,
            "1bad": 2,
            "class": 3,
            "not-a-name": 4,
            "nan": math.nan,
            "inf": [1, {"deep": math.inf}],
            "obj": object(),
            "also_ok": "x",
        })
    error = caught.value
    assert error.status == 422
    assert set(error.fields) == {"variables.1bad", "variables.class", "variables.not-a-name",
                                 "variables.nan", "variables.inf", "variables.obj"}
    assert "keyword" in error.fields["variables.class"]
    assert "NaN" in error.fields["variables.nan"]
    assert error.message.startswith("6 invalid fields in variables")


def test_one_problem_names_the_field_in_the_message() -> None:
    with pytest.raises(InvalidInput) as caught:
        encode_variables({"ok": 1, "bad key": 2})
    assert set(caught.value.fields) == {"variables.bad key"}
    assert caught.value.message.startswith("variables.bad key: ")


def test_field_prefix_names_the_item() -> None:
    """In a bulk request the caller learns which item's variables were wrong."""
    with pytest.raises(InvalidInput) as caught:
        encode_variables({"-x": 1}, field="3.variables")
    assert set(caught.value.fields) == {"3.variables.-x"}


@pytest.mark.parametrize("value", [["a", "list"], "text", 3, None])
def test_variables_must_be_an_object(value: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        encode_variables(value)
    assert caught.value.fields == {"variables": "must be an object"}


def test_unsortable_nested_keys_are_a_problem_not_a_crash() -> None:
    with pytest.raises(InvalidInput) as caught:
        encode_variables({"v": {1: "a", "b": 2}})
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
        {"count": 3, "name": "3", "on": True, "tags": [1, 2]}).items()}
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
