"""Helpers for the inventory-bundle tests: download a bundle, read its archive the way a user's
tools would (tarfile, zipfile), and unpack it into a scratch directory with the safe extraction
every caller should use, checking that nothing lands outside that directory."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml

from tests.conftest import Client

ARCHIVES = ("tgz", "zip")
LAYOUTS = ("hosts", "ansible")


@dataclasses.dataclass(frozen=True)
class Member:
    """One file of a bundle, with the metadata its archive recorded for it."""

    path: str
    data: bytes
    mode: int
    info: Any
    """The tarfile.TarInfo or zipfile.ZipInfo it was read from."""


@dataclasses.dataclass
class Bundle:
    fmt: str
    raw: bytes
    headers: dict[str, str]
    members: list[Member]

    @property
    def etag(self) -> str:
        return self.headers["ETag"]

    @property
    def paths(self) -> list[str]:
        return [member.path for member in self.members]

    @property
    def files(self) -> dict[str, bytes]:
        return {member.path: member.data for member in self.members}

    def mode(self, path: str) -> int:
        (member,) = [m for m in self.members if m.path == path]
        return member.mode

    def json(self, path: str) -> Any:
        return json.loads(self.files[path])

    def yaml(self, path: str) -> Any:
        return yaml.safe_load(self.files[path])

    @property
    def manifest(self) -> dict[str, Any]:
        return self.json("manifest.json")


def bundle_url(region_id: int, fmt: str = "tgz", /, **query: Any) -> str:
    url = f"/v1/inventory/{region_id}.{fmt}"
    return f"{url}?{urlencode(query, doseq=True)}" if query else url


def fetch(client: Client, region_id: int, fmt: str = "tgz", /, *, tenant: int | None = None,
          roles: str | None = None, headers: dict[str, str] | None = None,
          **query: Any) -> Any:
    """GET a bundle; the raw response (its streamed body read)."""
    response = client.get(bundle_url(region_id, fmt, **query), tenant=tenant, roles=roles,
                          headers=headers)
    response.get_data()
    return response


def download(client: Client, region_id: int, fmt: str = "tgz", /, **kwargs: Any) -> Bundle:
    """GET a bundle that must succeed; read it, and unpack it safely to check where it lands."""
    response = fetch(client, region_id, fmt, **kwargs)
    assert response.status_code == 200, (response.status_code, response.get_data()[:500])
    expected_type = {"tgz": "application/gzip", "zip": "application/zip",
                     "json": "application/json"}[fmt]
    assert response.mimetype == expected_type
    raw = response.get_data()
    members = read_archive(raw, fmt) if fmt in ARCHIVES else []
    if fmt in ARCHIVES:
        extracted = extract_safely(raw, fmt)
        assert extracted == {member.path: member.data for member in members}
    return Bundle(fmt, raw, dict(response.headers), members)


def read_archive(raw: bytes, fmt: str) -> list[Member]:
    """Every file of a .tgz or .zip bundle, in archive order."""
    members: list[Member] = []
    if fmt == "tgz":
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as archive:
            for info in archive.getmembers():
                assert info.isfile(), f"{info.name} is not a regular file"
                handle = archive.extractfile(info)
                assert handle is not None
                members.append(Member(info.name, handle.read(), info.mode, info))
    else:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            assert archive.testzip() is None
            for info in archive.infolist():
                assert not info.is_dir(), f"{info.filename} is a directory entry"
                members.append(Member(info.filename, archive.read(info),
                                      (info.external_attr >> 16) & 0o7777, info))
    return members


def extract_safely(raw: bytes, fmt: str) -> dict[str, bytes]:
    """Unpack an archive into a fresh directory as a careful user would (tarfile's "data"
    filter; zipfile's own name sanitizing), assert every file landed inside that directory,
    and return what landed, by path relative to it."""
    with tempfile.TemporaryDirectory(prefix="bundle-") as scratch:
        root = Path(scratch, "out")
        root.mkdir()
        if fmt == "tgz":
            with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as archive:
                archive.extractall(root, filter="data")
        else:
            with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                archive.extractall(root)
        real_root = root.resolve()
        found: dict[str, bytes] = {}
        for directory, _, names in os.walk(real_root):
            for name in names:
                path = Path(directory, name)
                assert not path.is_symlink(), path
                resolved = path.resolve()
                assert resolved.is_relative_to(real_root), resolved
                found[resolved.relative_to(real_root).as_posix()] = resolved.read_bytes()
        assert [p.name for p in Path(scratch).iterdir()] == ["out"], "wrote beside the root"
        return found


def hosts_in_yaml(inventory: dict[str, Any]) -> dict[str, set[str]]:
    """From a YAML inventory: each group (``all`` included) → the hosts in it, directly or
    through subgroups, as Ansible reads the file."""
    children: dict[str, set[str]] = {}
    direct: dict[str, set[str]] = {}

    def visit(name: str, body: dict[str, Any] | None) -> None:
        body = body or {}
        direct.setdefault(name, set()).update((body.get("hosts") or {}).keys())
        kids = body.get("children") or {}
        children.setdefault(name, set()).update(kids)
        for child, child_body in kids.items():
            visit(child, child_body)

    ((top, body),) = inventory.items()
    assert top == "all"
    visit("all", body)

    def members(name: str, seen: frozenset[str] = frozenset()) -> set[str]:
        assert name not in seen, f"cycle through {name}"
        found = set(direct.get(name, ()))
        for child in children.get(name, ()):
            found |= members(child, seen | {name})
        return found

    return {name: members(name) for name in direct}
