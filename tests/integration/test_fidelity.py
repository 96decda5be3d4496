"""Fidelity: hundreds of random fleets of nasty values and names (YAML 1.1 lookalikes,
Jinja-looking text, quotes and backslashes, control and astral characters, big integers,
floats, deep structures, odd keys, priorities, diamonds, long chains, hosts in many groups,
every kind of name Ansible accepts) mean to Ansible — through layout=ansible, layout=hosts
and the .json — and to GET /v1/hosts/{id}/variables?resolved=true exactly what they mean
written by hand as an Ansible inventory; and that inventory, imported, gives a bundle that
means the same (for every fourth fleet). See tests/fidelity.py.

benchmarks/fidelity.py runs the same check over thousands of fleets.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from craton.api import create_app
from craton.db import migrate
from craton.db.session import Database
from tests.conftest import Client, make_settings
from tests.fidelity import (
    OUTPUTS,
    Built,
    Disagreement,
    Fleet,
    Lister,
    ansible_inventory_command,
    build,
    check_fleets,
    fleet_of,
    summarize,
)

FLEETS = int(os.environ.get("CRATON_FIDELITY_FLEETS", "200"))
SEED = 11
IMPORT_EVERY = 4
"""Every fourth fleet is imported too (benchmarks/fidelity.py imports every one): an import
costs as much as the rest of a fleet's checks, and tests/integration/test_import.py has its own
random round trips."""


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """An app of its own on SQLite: these tests create a region or two per fleet."""
    tmp = tmp_path_factory.mktemp("fidelity")
    db = Database(f"sqlite:///{tmp / 'craton.db'}")
    migrate.upgrade(db.engine)
    yield Client(create_app(make_settings(tmp), database=db).test_client())
    db.dispose()


@pytest.fixture(scope="module")
def listers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Lister]]:
    """Two helpers, one a core (tests/ansible_lister.py)."""
    logs = tmp_path_factory.mktemp("lister")
    helpers = [Lister(logs / f"ansible-{index}.log") for index in range(2)]
    yield helpers
    for helper in helpers:
        helper.close()


def test_every_output_means_to_ansible_what_the_fleet_means(
        app: Client, listers: list[Lister], tmp_path: Path) -> None:
    """0 disagreements over FLEETS fleets (200; CRATON_FIDELITY_FLEETS sets it): a failure
    names each disagreeing fleet's index, which fleet_of(SEED, index) builds again."""
    found: dict[int, tuple[Fleet, list[Disagreement]]] = {}
    fleets = ((index, fleet_of(SEED, index)) for index in range(FLEETS))
    for index, fleet, problems in check_fleets(app, listers, fleets, tmp_path,
                                               import_every=IMPORT_EVERY):
        if problems:
            found[index] = (fleet, problems)
    everything = [d for _, problems in found.values() for d in problems]
    report = [f"{len(found)} of {FLEETS} fleets disagree: {summarize(everything)}"]
    for index, (fleet, problems) in list(found.items())[:5]:
        report.append(f"fleet {index} (seed {SEED}): {fleet}")
        report += [f"  {d.kind}: {d.detail}" for d in problems[:4]]
    assert not found, "\n".join(report)


def test_the_helper_lists_what_ansible_inventory_lists(
        app: Client, listers: list[Lister], tmp_path: Path) -> None:
    """The helper is the command: for two fleets, the helper's listing of the reference and
    of every output is, byte for byte, what the ansible-inventory command prints."""
    checked = 0
    for index in range(2):
        built = build(app, fleet_of(SEED + 1, index), tmp_path / f"fleet-{index}")
        assert isinstance(built, Built), built
        for sources in [[built.original], *(built.sources[output] for output in OUTPUTS)]:
            answer = listers[0].list(sources)
            assert "output" in answer, answer
            assert answer["output"] == ansible_inventory_command(sources).rstrip("\n")
            checked += 1
    assert checked == 8
