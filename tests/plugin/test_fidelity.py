"""``ansible-inventory -i craton.yml --list`` — the craton.fleet plugin against a real
craton-api — lists exactly what ``ansible-inventory --list`` lists over the extracted
``layout=ansible`` bundle of the same selection (hostvars, groups, children, byte for byte),
for random fleets of nasty names and values (tests/fidelity.py's generator)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.fidelity import Built, Lister, build, fleet_of
from tests.integration.test_server import Server
from tests.plugin.conftest import Ansible, HttpClient, write_config

FLEETS = int(os.environ.get("CRATON_PLUGIN_FLEETS", "16"))
SEED = 13
REAL_COMMAND = 2
"""Fleets whose plugin listing also comes from the real ansible-inventory command (the
helper is checked against the command in tests/integration/test_fidelity.py; this checks it
for the plugin too)."""


def test_random_fleets_list_as_their_bundles(api: Server, ansible: Ansible,
                                             listers: list[Lister], tmp_path: Path) -> None:
    client = HttpClient(api)
    compared = 0
    for index in range(FLEETS):
        fleet = fleet_of(SEED, index)
        built = build(client, fleet, tmp_path / f"fleet-{index}")  # type: ignore[arg-type]
        assert isinstance(built, Built), (index, built)
        selection = [built.host_ids[name] for name in fleet.selection or ()]
        config = write_config(tmp_path / f"fleet-{index}" / "craton.yml", api,
                              built.region_id, host_ids=selection)
        listers[0].submit([config])
        listers[1].submit(built.sources["layout=ansible"])
        plugin, bundle = listers[0].result(), listers[1].result()
        assert "output" in bundle, (index, bundle)
        assert "output" in plugin, (index, fleet, plugin)
        assert plugin["output"] == bundle["output"], (index, fleet)
        if index < REAL_COMMAND:
            assert ansible.inventory(config).rstrip("\n") == plugin["output"]
        hostvars = json.loads(plugin["output"])["_meta"]["hostvars"]
        assert sorted(hostvars) == sorted(fleet.selection or built.host_ids) or \
            not any(h["variables"] or len(h) > 3 for h in fleet.hosts)
        compared += 1
    assert compared == FLEETS
