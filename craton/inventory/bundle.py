"""Bundle: a selection of a region, laid out as ansible-runner private data directories, as a
deterministic .tgz or .zip stream — or as Ansible's dynamic-inventory JSON.

Layouts (every archive ends with ``manifest.json``, which lists each file's sha256):

``ansible`` — one directory to run Ansible on directly::

    inventory/hosts.yml                     the group tree and its members (+ group priorities)
    inventory/group_vars/all.json           the region's variables
    inventory/group_vars/<group>.json       a group's variables, or, when it has references,
    inventory/group_vars/<group>/_references/<reference>.json  (loaded first)
    inventory/group_vars/<group>/vars.json                     (then the group's own)
    inventory/host_vars/<host>.json         the host's variables
    secrets/<host>/<secret>                 mode 0600; an SSH key is wired in as the host's
                                            ansible_ssh_private_key_file

``hosts`` (default) — one private data directory per host, for running host by host::

    hosts/<host>/inventory/hosts.yml        that host alone, in its groups
    hosts/<host>/inventory/host_vars/<host>.json   its fully resolved variables
    hosts/<host>/env/ssh_key                its SSH key, for ansible-runner's ssh-agent
    hosts/<host>/secrets/<host>/<secret>

Vars files are JSON, which Ansible reads natively (and is YAML): it keeps values exactly as
stored and costs a tenth of emitting YAML.

Determinism: entries come in a fixed order (groups by name, hosts by name, files within a host
by path, manifest last) with fixed mtimes, owners and modes, and the gzip header carries no
timestamp; so the same inventory state gives the same bytes, and the ETag — a digest of the
request, the region's inventory version and the references' pins — is known before any host is
read.

Cost: about a dozen queries whatever the number of hosts; host variables are streamed from one
query, so memory grows with the host list, not with the variables.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import itertools
import json
import operator
import re
import tarfile
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from craton import __version__
from craton.context import Action, RequestContext
from craton.db.models import Host, HostGroup, HostVariable, Secret, SecretKind
from craton.db.session import Database
from craton.errors import Conflict, InvalidInput
from craton.inventory.resolve import (
    PRIORITY,
    GroupGraph,
    HostFacts,
    derived_variables,
    resolve_fast,
)
from craton.inventory.select import HostFilter, check_group_exists, host_conditions
from craton.inventory.snapshot import (
    RegionHead,
    RegionSnapshot,
    complete_snapshot,
    key_file_path,
    load_head,
)
from craton.names import group_name_problem, host_name_problem, slug_problem
from craton.secrets.backends import SecretBackend
from craton.sources.fetch import Fetcher

BUNDLE_FORMAT = 1
LAYOUTS = ("hosts", "ansible")
FORMATS = {
    "tgz": "application/gzip",
    "zip": "application/zip",
    "json": "application/json",
}
FIXED_MTIME = 315532800  # 1980-01-01T00:00:00Z, the earliest time a zip entry can carry
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
FLUSH_BYTES = 256 * 1024
STREAM_ROWS = 5000


@dataclasses.dataclass(frozen=True)
class BundleSpec:
    region_id: int
    filter: HostFilter = dataclasses.field(default_factory=HostFilter)
    layout: str = "hosts"
    format: str = "tgz"


@dataclasses.dataclass(frozen=True, slots=True)
class HostRecord:
    id: int
    name: str
    version: int
    ip_address: str | None
    fqdn: str | None
    ssh_port: int | None
    ssh_user: str | None
    groups: frozenset[int]


@dataclasses.dataclass(frozen=True, slots=True)
class SecretRecord:
    id: int
    version: int
    host_id: int
    name: str
    kind: SecretKind


@dataclasses.dataclass(frozen=True)
class Entry:
    path: str
    data: bytes
    mode: int = 0o644


class PreparedBundle:
    """Everything needed to answer: the ETag at once, the bytes on demand. Owns a read session
    (one consistent snapshot) until ``stream()`` ends or ``close()`` is called.

    The ETag is known from the region's inventory version and its references' pins alone;
    the groups, hosts and secrets are read by :meth:`load` (which ``stream`` and ``write_to``
    call), so answering a 304 reads none of them."""

    def __init__(self, session: Session, spec: BundleSpec, head: RegionHead,
                 include_secrets: bool, backend: SecretBackend) -> None:
        self.session = session
        self.spec = spec
        self.head = head
        self.include_secrets = include_secrets
        self.backend = backend
        self.etag = self._fingerprint()
        self._loaded = False
        self.snapshot: RegionSnapshot
        self.hosts: list[HostRecord]
        self.secrets: list[SecretRecord]

    def load(self) -> None:
        """Read the groups, hosts and secrets and check their names, so that whatever would
        refuse the bundle is raised before its first byte is sent."""
        if self._loaded:
            return
        self.snapshot = complete_snapshot(self.session, self.head)
        self.hosts = _load_hosts(self.session, self.spec.filter)
        self.secrets = _load_secrets(self.session, self.spec.filter) \
            if self.include_secrets else []
        check_archive_names(self.snapshot, self.hosts, self.secrets)
        self._loaded = True

    @property
    def content_type(self) -> str:
        return FORMATS[self.spec.format]

    @property
    def filename(self) -> str:
        suffix = "" if self.spec.format == "json" else f"-{self.spec.layout}"
        return f"craton-{self.head.name}{suffix}.{self.spec.format}"

    def close(self) -> None:
        self.session.close()

    def stream(self) -> Iterator[bytes]:
        """The bundle's bytes, in pieces, then the session is released."""
        try:
            self.load()
            if self.spec.format == "json":
                yield from _stream_json(self)
            else:
                writer = TarStream() if self.spec.format == "tgz" else ZipStream()
                yield from writer.write(self.entries())
        finally:
            self.close()

    def write_to(self, directory: Path) -> None:
        """Materialize the bundle as files under ``directory`` (what a job runs on)."""
        try:
            self.load()
            for entry in self.entries():
                target = directory / safe_path(entry.path)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(entry.data)
                target.chmod(entry.mode)
        finally:
            self.close()

    # --- entries --------------------------------------------------------------------------

    def entries(self) -> Iterator[Entry]:
        files: list[bytes] = []
        layout = ansible_layout if self.spec.layout == "ansible" else per_host_layout
        for entry in layout(self):
            safe_path(entry.path)
            files.append(b'  "%s": "%s"' % (entry.path.encode(),
                                           hashlib.sha256(entry.data).hexdigest().encode()))
            yield entry
        files.sort()
        yield Entry("manifest.json", _json_document(self.manifest(_Lines(files, b"{}"))))

    def host_variables(self) -> Iterator[tuple[HostRecord, dict[str, str]]]:
        """Each host (by name) with its own variables, streamed from one query."""
        stmt = (
            select(HostVariable.host_id, HostVariable.key, HostVariable.value_json)
            .join(Host, Host.id == HostVariable.host_id)
            .where(*host_conditions(self.spec.filter))
            .order_by(Host.name, HostVariable.key)
        )
        by_host = itertools.groupby(self._stream(stmt, STREAM_ROWS), key=operator.itemgetter(0))
        pending = next(by_host, None)
        for host in self.hosts:
            if pending is not None and pending[0] == host.id:
                yield host, {key: value for _, key, value in pending[1]}
                pending = next(by_host, None)
            else:
                yield host, {}

    def facts(self, host: HostRecord, own: dict[str, str]) -> HostFacts:
        key = self.key_files.get(host.id)
        return HostFacts(
            id=host.id, name=host.name, variables=own, ip_address=host.ip_address,
            fqdn=host.fqdn, ssh_port=host.ssh_port, ssh_user=host.ssh_user,
            key_file=(key.id, key.name, key_file_path(host.name, key.name)) if key else None,
        )

    @property
    def key_files(self) -> dict[int, SecretRecord]:
        """Each host's SSH key: its ssh_private_key secret (the first by name if several)."""
        if not hasattr(self, "_key_files"):
            chosen: dict[int, SecretRecord] = {}
            for secret in sorted(self.secrets, key=lambda s: s.name):
                if secret.kind is SecretKind.SSH_PRIVATE_KEY:
                    chosen.setdefault(secret.host_id, secret)
            self._key_files = chosen
        return self._key_files

    def secret_contents(self) -> Iterator[tuple[SecretRecord, bytes]]:
        """Decrypted secrets of the selected hosts, by host name then secret name."""
        if not self.include_secrets or not self.secrets:
            return
        by_id = {secret.id: secret for secret in self.secrets}
        stmt = (
            select(Secret.id, Secret.ciphertext).join(Host, Host.id == Secret.host_id)
            .where(*host_conditions(self.spec.filter)).order_by(Host.name, Secret.name)
        )
        for secret_id, ciphertext in self._stream(stmt, 500):
            yield by_id[secret_id], self.backend.open(ciphertext)

    def _stream(self, stmt: Any, rows: int) -> Iterator[Any]:
        """Rows of a plain column query through Core (no ORM row processing), fetched from a
        server-side cursor ``rows`` at a time."""
        result = self.session.connection().execution_options(
            stream_results=True, yield_per=rows).execute(stmt)
        for partition in result.partitions():
            yield from partition

    def manifest(self, files: _Lines) -> dict[str, Any]:
        """What the bundle holds. The two lists that grow with the fleet — hosts and files —
        arrive as encoded lines, so a 100,000-host manifest is never held as objects."""
        graph = self.snapshot.graph
        names = {node.id: node.name for node in graph.nodes.values()}
        encode = json.JSONEncoder(sort_keys=True, ensure_ascii=False).encode
        hosts = (b"  " + encode({"id": h.id, "name": h.name,
                                 "groups": sorted(names[g] for g in h.groups)}).encode()
                 for h in self.hosts)
        return {
            "craton": {"bundle_format": BUNDLE_FORMAT, "version": __version__},
            "region": {"id": self.snapshot.id, "name": self.snapshot.name,
                       "tenant_id": self.snapshot.tenant_id},
            "layout": self.spec.layout,
            "filters": {k: v for k, v in self.spec.filter.as_query().items()
                        if k != "region_id"},
            "secrets": "included" if self.include_secrets else "omitted",
            "hosts": _Lines(hosts, b"[]"),
            "groups": [{"name": node.name,
                        "parents": sorted(names[p] for p in node.parents),
                        "depends_on": sorted(names[d] for d in node.depends_on)}
                       for node in sorted(graph.nodes.values(), key=lambda n: n.name)],
            "dependency_order": graph.dependency_levels(),
            "references": [ref.manifest_entry() for ref in self.snapshot.references],
            "files": files,
        }

    def _fingerprint(self) -> str:
        """A digest of what decides the bundle's bytes: the request (selection, layout,
        format, secrets or not), the region's inventory version — which every write that
        could change a bundle of the region moves on — and what each reference was fetched
        at."""
        state = {
            "bundle_format": BUNDLE_FORMAT, "craton": __version__,
            "spec": [self.spec.layout, self.spec.format, self.spec.filter.as_query()],
            "secrets": self.include_secrets,
            "region": [self.head.id, self.head.inventory_version],
            "references": [[r.id, r.pin] for r in self.head.references],
        }
        digest = hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()
        return f'"b{BUNDLE_FORMAT}-{digest[:40]}"'


def prepare_bundle(db: Database, ctx: RequestContext, spec: BundleSpec, fetcher: Fetcher | None,
                   backend: SecretBackend) -> PreparedBundle:
    """Read what the bundle is known by (the region, its references fetched) and compute its
    ETag; the rest is read when the bundle is built (:meth:`PreparedBundle.load`)."""
    if spec.layout not in LAYOUTS:
        raise InvalidInput(f"layout: must be one of {', '.join(LAYOUTS)}",
                           fields={"layout": f"must be one of {', '.join(LAYOUTS)}"})
    session = db.snapshot_session()
    try:
        head = load_head(session, ctx, spec.region_id, fetcher)
        spec = dataclasses.replace(
            spec, filter=dataclasses.replace(spec.filter, region_id=head.id))
        check_group_exists(session, ctx, spec.filter)
        include_secrets = spec.format != "json" and ctx.can(Action.REVEAL_SECRETS)
        return PreparedBundle(session, spec, head, include_secrets, backend)
    except BaseException:
        session.close()
        raise


def _load_hosts(session: Session, flt: HostFilter) -> list[HostRecord]:
    conditions = host_conditions(flt)
    memberships: dict[int, list[int]] = defaultdict(list)
    connection = session.connection()
    for host_id, group_id in connection.execute(
            select(HostGroup.host_id, HostGroup.group_id).join(Host, Host.id == HostGroup.host_id)
            .where(*conditions)).all():
        memberships[host_id].append(group_id)
    shared: dict[frozenset[int], frozenset[int]] = {}
    hosts: list[HostRecord] = []
    for row in connection.execute(
            select(Host.id, Host.name, Host.version, Host.ip_address, Host.fqdn, Host.ssh_port,
                   Host.ssh_user).where(*conditions).order_by(Host.name)).all():
        groups = frozenset(memberships.get(row[0], ()))
        hosts.append(HostRecord(*row, groups=shared.setdefault(groups, groups)))
    return hosts


def _load_secrets(session: Session, flt: HostFilter) -> list[SecretRecord]:
    return [SecretRecord(*row) for row in session.connection().execute(
        select(Secret.id, Secret.version, Secret.host_id, Secret.name, Secret.kind)
        .join(Host, Host.id == Secret.host_id).where(*host_conditions(flt))
        .order_by(Secret.id))]


# --- names and paths ---------------------------------------------------------------------------

def check_archive_names(snapshot: RegionSnapshot, hosts: Iterable[HostRecord],
                        secrets: Iterable[SecretRecord]) -> None:
    """Refuse, before a byte is sent, to build from a stored name that could not be a path part
    (only possible if something wrote the database behind the API's back)."""
    checks = [("host", h.name, host_name_problem(h.name)) for h in hosts]
    checks += [("group", g.name, group_name_problem(g.name))
               for g in snapshot.graph.nodes.values()]
    checks += [("secret", s.name, slug_problem(s.name)) for s in secrets]
    checks += [("reference", r.name, slug_problem(r.name)) for r in snapshot.references]
    checks.append(("region", snapshot.name, slug_problem(snapshot.name)))
    for kind, name, problem in checks:
        if problem is not None:
            raise Conflict(f"{kind} name {name!r} cannot be used in a bundle: {problem}; "
                           f"rename the {kind}")


_UNSAFE_CHARACTER = re.compile(r"[\x00-\x1f\x7f\\]")


def safe_path(path: str) -> str:
    """``path`` if it stays inside the bundle root; ValueError otherwise."""
    if not path or path[0] == "/" or _UNSAFE_CHARACTER.search(path) or any(
            part in ("", ".", "..") or len(part) > 255 for part in path.split("/")):
        raise ValueError(f"unsafe bundle path {path!r}")
    return path


# --- layouts -----------------------------------------------------------------------------------

def vars_file(variables: dict[str, str]) -> bytes:
    """A JSON object, one key per line in sorted order, values as stored (canonical JSON).
    Keys are Ansible variable names (letters, digits, '_'), so quoting them needs no escaping."""
    if not variables:
        return b"{}\n"
    lines = ",\n".join(f'  "{key}": {variables[key]}' for key in sorted(variables))
    return ("{\n" + lines + "\n}\n").encode()


def ansible_layout(bundle: PreparedBundle) -> Iterator[Entry]:
    snapshot, graph = bundle.snapshot, bundle.snapshot.graph
    group_entries: list[Entry] = []
    if snapshot.variables:
        group_entries.append(Entry("inventory/group_vars/all.json", vars_file(snapshot.variables)))
    for node in graph.nodes.values():
        if node.references:
            base = f"inventory/group_vars/{node.name}"
            group_entries += [Entry(f"{base}/_references/{ref.name}.json",
                                    vars_file(dict(ref.variables))) for ref in node.references]
            group_entries.append(Entry(f"{base}/vars.json", vars_file(node.plain_variables)))
        elif node.plain_variables:
            group_entries.append(Entry(f"inventory/group_vars/{node.name}.json",
                                       vars_file(node.plain_variables)))
    yield from sorted(group_entries, key=lambda entry: entry.path)

    for host, own in bundle.host_variables():
        facts = bundle.facts(host, own)
        variables = {**derived_variables(facts), **own}
        if variables:
            yield Entry(f"inventory/host_vars/{host.name}.json", vars_file(variables))
    yield Entry("inventory/hosts.yml", hosts_yml(graph, bundle.hosts, snapshot, priorities=True))
    names = {host.id: host.name for host in bundle.hosts}
    for secret, content in bundle.secret_contents():
        yield Entry(f"secrets/{names[secret.host_id]}/{secret.name}", content, 0o600)


def per_host_layout(bundle: PreparedBundle) -> Iterator[Entry]:
    snapshot, graph = bundle.snapshot, bundle.snapshot.graph
    templates: dict[frozenset[int], str] = {}

    def one_host_yml(host: HostRecord) -> bytes:
        """Hosts in the same groups share one hosts.yml but for their name."""
        if host.groups not in templates:
            placeholder = dataclasses.replace(host, name=_PLACEHOLDER)
            templates[host.groups] = hosts_yml(graph, [placeholder], snapshot,
                                               priorities=False).decode()
        return templates[host.groups].replace(json.dumps(_PLACEHOLDER),
                                              json.dumps(host.name)).encode()

    contents: dict[int, list[tuple[SecretRecord, bytes]]] = defaultdict(list)
    for secret, content in bundle.secret_contents():
        contents[secret.host_id].append((secret, content))
    for host, own in bundle.host_variables():
        facts = bundle.facts(host, own)
        base = f"hosts/{host.name}"
        key = bundle.key_files.get(host.id)
        host_contents = contents.pop(host.id, [])
        if key is not None:
            yield Entry(f"{base}/env/ssh_key",
                        next(c for s, c in host_contents if s.id == key.id), 0o600)
        resolved = resolve_fast(snapshot.variables, graph, host.groups, facts)
        yield Entry(f"{base}/inventory/host_vars/{host.name}.json", vars_file(resolved))
        yield Entry(f"{base}/inventory/hosts.yml", one_host_yml(host))
        for secret, content in sorted(host_contents, key=lambda pair: pair[0].name):
            yield Entry(f"{base}/secrets/{host.name}/{secret.name}", content, 0o600)


_PLACEHOLDER = "\x00host\x00"


def hosts_yml(graph: GroupGraph, hosts: list[HostRecord], snapshot: RegionSnapshot, *,
              priorities: bool) -> bytes:
    """The YAML inventory: every group once under ``all.children`` with its subgroups and
    direct members (names quoted, so "true" or "1.0" stay names), group priorities where set.
    With one host, only the groups that host is in."""
    members: dict[int, list[str]] = defaultdict(list)
    ungrouped: list[str] = []
    wanted: set[int] = set()
    for host in hosts:
        for group_id in host.groups:
            members[group_id].append(host.name)
            wanted |= graph.ancestors(group_id)
        if not host.groups:
            ungrouped.append(host.name)
    if len(hosts) != 1:
        wanted = set(graph.nodes)
    q = json.dumps
    lines = [f"# Craton inventory of region {q(snapshot.name)} ({snapshot.id})", "all:"]
    nodes = sorted((graph.nodes[g] for g in wanted), key=lambda node: node.name)
    children_of: dict[int, list[str]] = defaultdict(list)
    for node in nodes:
        for parent in node.parents:
            if parent in wanted:
                children_of[parent].append(node.name)
    if nodes:
        lines.append("  children:")
    for node in nodes:
        lines.append(f"    {q(node.name)}:")
        if priorities and PRIORITY in node.variables:
            lines += ["      vars:", f"        {q(PRIORITY)}: {node.priority}"]
        if children_of.get(node.id):
            lines.append("      children:")
            lines += [f"        {q(child)}:" for child in sorted(children_of[node.id])]
        if members.get(node.id):
            lines.append("      hosts:")
            lines += [f"        {q(name)}:" for name in sorted(members[node.id])]
    if ungrouped:
        lines.append("  hosts:")
        lines += [f"    {q(name)}:" for name in sorted(ungrouped)]
    return ("\n".join(lines) + "\n").encode()


# --- JSON (dynamic inventory) --------------------------------------------------------------------

def _stream_json(bundle: PreparedBundle) -> Iterator[bytes]:
    """Ansible's dynamic-inventory JSON: groups with hosts, children and vars, and under
    ``_meta.hostvars`` every host's fully resolved variables — which override whatever group
    vars Ansible merges below them, so a script inventory sees exactly what the API resolves.
    Group vars are there to read; ``ansible_group_priority`` only as the integer Craton orders
    by (one from a reference file stays an ordinary variable, in hostvars)."""
    graph, snapshot = bundle.snapshot.graph, bundle.snapshot
    yield b'{"_meta": {"hostvars": {'
    chunk: list[str] = []
    first = True
    for host, own in bundle.host_variables():
        variables = resolve_fast(snapshot.variables, graph, host.groups, bundle.facts(host, own))
        body = ", ".join(f"{json.dumps(k)}: {variables[k]}" for k in sorted(variables))
        chunk.append(("" if first else ",") + f"\n  {json.dumps(host.name)}: {{{body}}}")
        first = False
        if len(chunk) >= 1000:
            yield "".join(chunk).encode()
            chunk = []
    chunk.append("\n}}")
    yield "".join(chunk).encode()
    members: dict[int, list[str]] = defaultdict(list)
    ungrouped = []
    for host in bundle.hosts:
        for group_id in host.groups:
            members[group_id].append(host.name)
        if not host.groups:
            ungrouped.append(host.name)
    children_of: dict[int, list[str]] = defaultdict(list)
    for node in graph.nodes.values():
        for parent in node.parents:
            children_of[parent].append(node.name)
    top = sorted(node.name for node in graph.nodes.values() if not node.parents)
    groups = {"all": {"children": ["ungrouped", *top], "hosts": sorted(ungrouped),
                      "vars": _decoded(snapshot.variables)}}
    for node in sorted(graph.nodes.values(), key=lambda n: n.name):
        merged: dict[str, str] = {}
        for _, values in node.layers():
            merged.update(values)
        merged.pop(PRIORITY, None)
        if PRIORITY in node.variables:
            merged[PRIORITY] = str(node.priority)
        groups[node.name] = {"children": sorted(children_of.get(node.id, [])),
                             "hosts": sorted(members.get(node.id, [])),
                             "vars": _decoded(merged)}
    for name, group in groups.items():
        yield f',\n{json.dumps(name)}: {json.dumps(group, sort_keys=True)}'.encode()
    yield b"\n}\n"


def _decoded(encoded: dict[str, str]) -> dict[str, Any]:
    return {key: json.loads(value) for key, value in encoded.items()}


@dataclasses.dataclass
class _Lines:
    """A large list or object of a JSON document, given as its items' encoded lines."""

    lines: Iterable[bytes]
    brackets: bytes


def _json_document(data: dict[str, Any]) -> bytes:
    """Sorted JSON, one top-level key per line and one line per item of a top-level list or
    object: readable, and encoded by the C encoder (indentation would force the slow one)."""
    compact = json.JSONEncoder(sort_keys=True, ensure_ascii=False).encode
    lines: list[bytes] = []
    for key in sorted(data):
        value = data[key]
        if isinstance(value, _Lines):
            body = b",\n".join(value.lines)
            opening, closing = value.brackets[:1], value.brackets[1:]
            lines.append(b'"%s": %s\n%s\n%s' % (key.encode(), opening, body, closing)
                         if body else b'"%s": %s' % (key.encode(), value.brackets))
            continue
        if isinstance(value, list) and value:
            body = ",\n".join(f"  {compact(item)}" for item in value)
            text = f"{compact(key)}: [\n{body}\n]"
        elif isinstance(value, dict) and value:
            body = ",\n".join(f"  {compact(k)}: {compact(value[k])}" for k in sorted(value))
            text = f"{compact(key)}: {{\n{body}\n}}"
        else:
            text = f"{compact(key)}: {compact(value)}"
        lines.append(text.encode())
    return b"{\n" + b",\n".join(lines) + b"\n}\n"


# --- archive writers ------------------------------------------------------------------------------

class _Sink(io.RawIOBase):
    """A write-only buffer that the writers drain between entries."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        self.size += len(chunk)
        return len(chunk)

    def drain(self) -> bytes:
        data = b"".join(self.parts)
        self.parts, self.size = [], 0
        return data


class TarStream:
    """A gzipped tar stream, byte-for-byte what ``tarfile`` writes in PAX format, only faster:
    the usual entry (an ASCII path of at most 100 bytes) gets a ustar header filled into a
    template — 10x quicker than ``TarInfo.tobuf``, which still writes every other entry."""

    BLOCK = tarfile.BLOCKSIZE
    RECORD = tarfile.RECORDSIZE

    def write(self, entries: Iterable[Entry]) -> Iterator[bytes]:
        sink = _Sink()
        written = 0
        pending: list[bytes] = []
        pending_size = 0
        with gzip.GzipFile(filename="", mode="wb", fileobj=sink, mtime=0,
                           compresslevel=6) as gz:
            for entry in entries:
                pending += (self.header(entry), entry.data, bytes(-len(entry.data) % self.BLOCK))
                pending_size += self.BLOCK + len(entry.data)
                if pending_size >= FLUSH_BYTES:
                    chunk = b"".join(pending)
                    written += len(chunk)
                    gz.write(chunk)
                    pending, pending_size = [], 0
                    yield sink.drain()
            chunk = b"".join(pending)
            written += len(chunk)
            end = 2 * self.BLOCK
            gz.write(chunk + bytes(end + (-(written + end) % self.RECORD)))
        yield sink.drain()

    @staticmethod
    def header(entry: Entry) -> bytes:
        name = entry.path.encode("utf-8", "surrogateescape")
        if len(name) > 100 or not entry.path.isascii():
            info = tarfile.TarInfo(entry.path)
            info.size, info.mode, info.mtime = len(entry.data), entry.mode, FIXED_MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        block = bytearray(_USTAR_TEMPLATE)
        mode, size = b"%07o\0" % entry.mode, b"%011o\0" % len(entry.data)
        block[0:len(name)] = name
        block[100:108] = mode
        block[124:136] = size
        block[148:156] = b"%06o\0 " % (_USTAR_TEMPLATE_SUM + sum(name) + sum(mode) + sum(size))
        return bytes(block)


def _ustar_template() -> bytes:
    """The header tarfile itself writes for a short regular file, with the name, mode, size
    and checksum fields blanked (the checksum as the spaces it is summed as)."""
    info = tarfile.TarInfo("x")
    info.mtime, info.uid, info.gid, info.uname, info.gname = FIXED_MTIME, 0, 0, "", ""
    block = bytearray(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
    block[0:100] = bytes(100)
    block[100:108] = bytes(8)
    block[124:136] = bytes(12)
    block[148:156] = b" " * 8
    return bytes(block)


_USTAR_TEMPLATE = _ustar_template()
_USTAR_TEMPLATE_SUM = sum(_USTAR_TEMPLATE)


class ZipStream:
    """Deflated zip entries written as a stream (data descriptors, no seeking)."""

    def write(self, entries: Iterable[Entry]) -> Iterator[bytes]:
        sink = _Sink()
        with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_DEFLATED,
                             compresslevel=6) as archive:
            for entry in entries:
                info = zipfile.ZipInfo(entry.path, date_time=ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.create_system = 3
                info.external_attr = (0o100000 | entry.mode) << 16
                archive.writestr(info, entry.data)
                if sink.size >= FLUSH_BYTES:
                    yield sink.drain()
        yield sink.drain()
