"""The ``craton`` command against a real craton-api: the OpenStack CLI habits (-f, -c,
environment variables, complete, --debug) and a command for each kind of object."""

from __future__ import annotations

import json
from pathlib import Path

from cratonclient import Client
from tests.client.conftest import Api, Fleet, run_cli


def test_host_list_filters_and_formats(api: Api, fleet: Fleet) -> None:
    listed = run_cli(api, "host", "list", "--region", str(fleet.region_id), "--group",
                     "cloud", "--var", "rack=r7", "-f", "json")
    rows = json.loads(listed.stdout)
    assert [row["name"] for row in rows] == ["c1", "c3", "c5"]
    assert rows[0]["groups"] == ["compute"] and rows[0]["ip_address"] == "10.0.1.1"
    names = run_cli(api, "host", "list", "--region", "dfw", "--var", "index=2", "-f", "value",
                    "-c", "name", env={"CRATON_TENANT": str(fleet.tenant_id)})
    assert names.stdout.split() == ["c2"]
    table = run_cli(api, "host", "list", "--region", str(fleet.region_id), "--group",
                    "compute").stdout.splitlines()
    assert table[1].split("|")[1:3] == [" id ", " name "]
    assert [line.split("|")[2].strip() for line in table[3:-1]] == ["c1", "c2", "c3"]
    assert "| compute " in table[3], "lists shown as text in a table"
    empty = run_cli(api, "host", "list", "--region", str(fleet.region_id), "--group", "gpu")
    assert empty.stdout.strip() == ""
    csv = run_cli(api, "host", "list", "--region", str(fleet.region_id), "-f", "csv", "-c",
                  "name", "-c", "ip_address")
    assert csv.stdout.splitlines()[:2] == ['"name","ip_address"', '"c1","10.0.1.1"']


def test_host_set_show_and_resolved_vars(api: Api, fleet: Fleet) -> None:
    host = str(fleet.host_ids["c2"])
    run_cli(api, "host", "set", host, "--var", "rack=r9", "--var", "port=22",
            "--unset-var", "index", "--ip-address", "10.0.9.2")
    shown = json.loads(run_cli(api, "host", "show", host, "-f", "json").stdout)
    assert shown["variables"] == {"rack": "r9", "port": 22}
    assert shown["ip_address"] == "10.0.9.2"
    resolved = json.loads(run_cli(api, "host", "vars", host, "--resolved", "-f",
                                  "json").stdout)
    by_key = {row["key"]: row for row in resolved}
    assert by_key["ntp_server"] == {"key": "ntp_server", "value": "10.0.0.1",
                                    "source": "region dfw"}
    assert by_key["role"]["source"] == "group compute"
    assert by_key["port"] == {"key": "port", "value": 22, "source": "host c2"}


def test_groups_tenants_regions(api: Api, fleet: Fleet) -> None:
    region = str(fleet.region_id)
    made = json.loads(run_cli(api, "group", "create", region, "storage", "--host", "c4",
                              "-f", "json").stdout)
    assert made["name"] == "storage"
    run_cli(api, "group", "add-child", "cloud", "storage", "--region", region)
    cloud = json.loads(run_cli(api, "group", "show", "cloud", "--region", region, "-f",
                               "json").stdout)
    assert sorted(cloud["children"]) == ["compute", "storage"]
    cycle = run_cli(api, "group", "add-child", "gpu", "cloud", "--region", region, check=False)
    assert cycle.returncode == 1 and "409" in cycle.stderr and "Traceback" not in cycle.stderr
    regions = json.loads(run_cli(api, "region", "list", "--tenant", str(fleet.tenant_id),
                                 "-f", "json").stdout)
    assert [r["name"] for r in regions] == ["dfw"]
    missing = run_cli(api, "host", "show", "nosuch", check=False)
    assert missing.returncode == 1 and "no host named 'nosuch'" in missing.stderr


def test_inventory_get_extracts_and_skips_unchanged(api: Api, fleet: Fleet,
                                                    tmp_path: Path) -> None:
    out = tmp_path / "dfw"
    first = json.loads(run_cli(api, "inventory", "get", str(fleet.region_id), "-o", str(out),
                               "--layout", "ansible", "--var", "rack=r8", "-f",
                               "json").stdout)
    assert first["changed"] is True
    assert sorted(p.name for p in (out / "inventory" / "host_vars").iterdir()) == \
        ["c2.json", "c4.json"]
    again = json.loads(run_cli(api, "inventory", "get", str(fleet.region_id), "-o", str(out),
                               "--layout", "ansible", "--var", "rack=r8", "-f",
                               "json").stdout)
    assert again == {**first, "changed": False}


def test_debug_shows_the_exchange_without_the_key(api: Api, fleet: Fleet) -> None:
    done = run_cli(api, "--debug", "host", "list", "--region", str(fleet.region_id),
                   env={"CRATON_API_KEY": "craton_abc_topsecretkeymaterial"})
    assert "REQ GET http://127.0.0.1:" in done.stderr and "RESP 200" in done.stderr
    assert "X-Craton-Request: 1" in done.stderr
    assert "Authorization: <redacted>" in done.stderr
    assert "topsecretkeymaterial" not in done.stderr + done.stdout
    quiet = run_cli(api, "host", "list", "--region", str(fleet.region_id))
    assert "REQ GET" not in quiet.stderr


def test_shell_completion(api: Api) -> None:
    script = run_cli(api, "complete").stdout
    assert "_craton()" in script and "host" in script and "list" in script


def test_host_import_is_all_or_nothing(api: Api, fleet: Fleet, tmp_path: Path,
                                       client: Client) -> None:
    bodies = tmp_path / "hosts.yml"
    bodies.write_text("- {name: n1, ip_address: 10.2.0.1}\n- {name: all}\n")
    refused = run_cli(api, "host", "import", str(fleet.region_id), str(bodies), check=False)
    assert refused.returncode == 1 and "422" in refused.stderr
    assert list(client.hosts.list(region=fleet.region_id, name="n1")) == []
    bodies.write_text("- {name: n1, ip_address: 10.2.0.1}\n- {name: n2}\n")
    made = json.loads(run_cli(api, "host", "import", str(fleet.region_id), str(bodies), "-f",
                              "json").stdout)
    assert [row["name"] for row in made] == ["n1", "n2"]
