"""The Python library against a real craton-api: typed objects, lazy paging, filters, bulk
create, conditional saves, resolved variables with provenance, errors, bundles."""

from __future__ import annotations

import io
import json
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from cratonclient import Client, Host
from cratonclient.bundles import ETAG_FILE, extract_tar, extract_zip
from cratonclient.errors import BundleError, Conflict, InvalidInput, NotFound
from tests.client.conftest import Fleet


def test_hosts_list_filters_and_pages_lazily(client: Client, fleet: Fleet) -> None:
    compute = client.hosts.list(region=fleet.region_id, group="cloud", var={"rack": "r7"},
                                page_size=2)
    assert compute.pages == 0, "nothing is read before iterating"
    hosts = list(compute)
    assert [h.name for h in hosts] == ["c1", "c3", "c5"] and compute.pages == 2
    assert all(isinstance(h, Host) for h in hosts)
    assert hosts[0].groups == ["compute"] and hosts[0].variables == {"rack": "r7", "index": 1}
    assert hosts[0].etag == '"1"'
    first = client.hosts.list(region=fleet.region_id, page_size=1)
    assert first.first() is not None and first.pages == 1
    assert [h.name for h in client.hosts.list(region=fleet.region_id, var=["index:4"])] == ["c4"]
    assert [h.name for h in client.hosts.list(region=fleet.region_id, name="c2")] == ["c2"]


def test_save_sends_only_changes_and_refuses_a_stale_version(client: Client,
                                                           fleet: Fleet) -> None:
    mine = client.hosts.get(fleet.host_ids["c1"])
    theirs = client.hosts.get(fleet.host_ids["c1"])
    mine.variables["rack"] = "r9"
    del mine.variables["index"]
    assert mine.changes() == {"variables": {"rack": "r9", "index": None}}
    assert mine.save() is True and mine.etag == '"2"'
    assert client.hosts.get(mine.id).variables == {"rack": "r9"}
    assert mine.save() is False, "nothing changed since"

    theirs.ip_address = "10.9.9.9"
    with pytest.raises(Conflict) as refused:
        theirs.save()
    assert refused.value.code == 412 and refused.value.request_id
    assert client.hosts.get(mine.id).ip_address == "10.0.1.1", "a refused save changes nothing"
    theirs.refresh()
    theirs.ip_address = "10.9.9.9"
    assert theirs.save() and client.hosts.get(mine.id).ip_address == "10.9.9.9"


def test_errors_carry_code_message_fields_and_request_id(client: Client, fleet: Fleet) -> None:
    with pytest.raises(InvalidInput) as bad:
        client.hosts.create_many(fleet.region_id, [{"name": "ok-1"}, {"name": "all"}])
    error = bad.value
    assert error.code == 422 and error.message and len(error.request_id or "") == 32
    assert any(name.startswith("1") for name in error.fields), error.fields
    assert [h.name for h in client.hosts.list(region=fleet.region_id, name="ok-1")] == []
    with pytest.raises(NotFound) as missing:
        client.hosts.get(10**9)
    assert missing.value.code == 404 and "404" in str(missing.value)


def test_groups_members_children_and_cycles(client: Client, fleet: Fleet) -> None:
    region = client.regions.get(fleet.region_id)
    groups = {g.name: g for g in region.groups()}
    storage = region.create_group("storage")
    groups["cloud"].add_children("storage")
    storage.add_hosts("c4", fleet.host_ids["c5"])
    assert sorted(h.name for h in storage.hosts()) == ["c4", "c5"]
    assert "storage" in client.groups.get(groups["cloud"].id).children
    with pytest.raises(Conflict) as cycle:
        groups["gpu"].add_children("cloud")
    assert cycle.value.code == 409
    assert sorted(h.name for h in groups["cloud"].hosts(descendants=True)) == \
        ["c1", "c2", "c3", "c4", "c5"]


def test_resolved_variables_name_their_origin(client: Client, fleet: Fleet) -> None:
    host = client.hosts.get(fleet.host_ids["c2"])
    resolved = host.resolved_variables(provenance="full")
    assert resolved["ntp_server"] == "10.0.0.1" and resolved["role"] == "compute"
    assert resolved.provenance is not None
    assert resolved.provenance["ntp_server"].describe() == "region dfw"
    assert resolved.provenance["role"].describe() == "group compute"
    assert resolved.provenance["rack"].describe() == "host c2"
    host.update_variables({"role": "db"})
    again = host.resolved_variables(provenance="full")
    assert again["role"] == "db" and again.provenance is not None
    assert again.provenance["role"].describe() == "host c2"
    assert [o["value"] for o in again.provenance["role"].overridden or []] == ["compute"]


def test_secrets_are_revealed_only_on_request(client: Client, fleet: Fleet) -> None:
    host = client.hosts.get(fleet.host_ids["c1"])
    secret = host.create_secret("db", "s3cret\n", kind="password")
    assert secret.size == len("s3cret\n") and secret.content is None
    assert [s.name for s in host.secrets()] == ["db"]
    assert "s3cret" not in json.dumps(client.secrets.get(secret.id).to_dict())
    assert secret.reveal() == "s3cret\n"


def test_bundle_extracts_and_is_not_downloaded_again_unchanged(client: Client, fleet: Fleet,
                                                              tmp_path: Path) -> None:
    target = tmp_path / "dfw"
    first = client.inventory.extract(fleet.region_id, target, layout="ansible",
                                     group="compute")
    assert first.changed and first.etag
    manifest = json.loads((target / "manifest.json").read_text())
    assert sorted(h["name"] for h in manifest["hosts"]) == ["c1", "c2", "c3"]
    assert (target / ETAG_FILE).read_text().strip() == first.etag
    (target / "inventory" / "hosts.yml").write_text("touched")
    again = client.inventory.extract(fleet.region_id, target, layout="ansible",
                                     group="compute")
    assert not again.changed and (target / "inventory" / "hosts.yml").read_text() == "touched"

    client.hosts.update_variables(fleet.host_ids["c1"], {"new": 1})
    changed = client.inventory.extract(fleet.region_id, target, layout="ansible",
                                       group="compute")
    assert changed.changed and changed.etag != first.etag
    assert "new" in (target / "inventory" / "host_vars" / "c1.json").read_text()


def test_zip_bundle_keeps_secret_modes(client: Client, fleet: Fleet, tmp_path: Path) -> None:
    client.secrets.create(fleet.host_ids["c1"], "key", "k\n", kind="opaque")
    done = client.inventory.extract(fleet.region_id, tmp_path / "z", fmt="zip",
                                    layout="ansible")
    secret = done.path / "secrets" / "c1" / "key"
    assert secret.read_text() == "k\n"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    archive = client.inventory.download(fleet.region_id, tmp_path / "b.tgz")
    assert tarfile.is_tarfile(archive.path)
    unchanged = client.inventory.download(fleet.region_id, tmp_path / "b.tgz",
                                          etag=archive.etag)
    assert not unchanged.changed


def _tgz(*entries: tarfile.TarInfo) -> io.BytesIO:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as archive:
        for entry in entries:
            archive.addfile(entry, io.BytesIO(b"x" * entry.size) if entry.isfile() else None)
    data.seek(0)
    return data


def _file(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 1
    return info


@pytest.mark.parametrize("evil", ["../escape", "/etc/escape", "a/../../escape", "link"])
def test_no_tar_entry_escapes(tmp_path: Path, evil: str) -> None:
    """Archives a hostile server could send (the real one never does): each is refused."""
    if evil == "link":
        bad = tarfile.TarInfo("inventory/link")
        bad.type, bad.linkname = tarfile.SYMTYPE, "/etc/passwd"
    else:
        bad = _file(evil)
    target = tmp_path / "out" / "deep"
    target.mkdir(parents=True)
    with pytest.raises(BundleError):
        extract_tar(_tgz(_file("inventory/ok"), bad), target)
    assert not (tmp_path / "out" / "escape").exists() and not (tmp_path / "escape").exists()
    assert not (target / "inventory" / "link").exists()


def test_no_zip_entry_escapes(tmp_path: Path) -> None:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr("ok", "fine")
        archive.writestr("../escape", "bad")
    data.seek(0)
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(BundleError):
        extract_zip(data, target)
    assert list(target.iterdir()) == [] and not (tmp_path / "escape").exists()
