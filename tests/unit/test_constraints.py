"""constraints.txt pins exactly what `pip install -e '.[test]' -e ./client` installs: every
distribution Craton with its test extra, and the client (cratonclient), need, directly or not,
at the version this virtualenv has — no pin for something nothing needs any more, none
missing. Read from the installed distributions' own metadata, so the test needs no network;
scripts/constraints regenerates the file."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

CONSTRAINTS = Path(__file__).resolve().parents[2] / "constraints.txt"
FIX = "run scripts/constraints after changing pyproject.toml's dependencies"


def pinned() -> dict[NormalizedName, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not name==version"
            pins[canonicalize_name(name)] = version.strip()
    return pins


def needed(root: str, extras: set[str]) -> dict[NormalizedName, str]:
    """Every distribution `root[extras]` needs in this environment, with its installed version;
    the requirements' markers (python_version, platform, extra) are evaluated here."""
    found: dict[NormalizedName, str] = {}
    seen: set[tuple[NormalizedName, str]] = set()
    todo = [(root, extra) for extra in {"", *extras}]
    while todo:
        name, extra = todo.pop()
        key = (canonicalize_name(name), extra)
        if key in seen:
            continue
        seen.add(key)
        distribution = metadata.distribution(name)
        found[key[0]] = distribution.version
        for text in distribution.requires or ():
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
                todo += [(requirement.name, e) for e in {"", *requirement.extras}]
    return found


def test_constraints_pin_what_the_test_extra_installs() -> None:
    installed = {**needed("craton", {"test"}), **needed("cratonclient", set())}
    del installed[canonicalize_name("craton")]
    del installed[canonicalize_name("cratonclient")]
    pins = pinned()
    assert sorted(set(pins) - set(installed)) == [], f"pinned but not needed: {FIX}"
    assert sorted(set(installed) - set(pins)) == [], f"needed but not pinned: {FIX}"
    assert {name: f"{pins[name]} pinned, {version} installed"
            for name, version in installed.items() if pins[name] != version} == {}, FIX
