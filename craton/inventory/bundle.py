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

This module reads what a bundle holds and answers for it (``prepare_bundle``); the layouts are
in ``layouts``, the JSON form in ``dynamic`` and the archive writers in ``archive``.

Cost: about a dozen queries whatever the number of hosts; host variables are streamed from one
query, so memory grows with the host list, not with the variables.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
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
from craton.inventory.archive import (
    Entry,
    Lines,
    TarStream,
    ZipStream,
    json_document,
    safe_path,
)
from craton.inventory.dynamic import stream_json
from craton.inventory.layouts import ansible_layout, json_key, per_host_layout
from craton.inventory.resolve import HostFacts
from craton.inventory.select import HostFilter, check_group_exists, host_conditions
from craton.inventory.snapshot import (
    RegionHead,
    RegionSnapshot,
    complete_snapshot,
    key_file_path,
    load_head,
)
from craton.inventory.variables import unsealed_all
from craton.names import group_name_problem, host_name_problem, slug_problem
from craton.secrets.backends import SecretBackend
from craton.sources.fetch import Fetcher

BUNDLE_FORMAT = 1
WRITER_REVISION = 3
"""Moves on whenever the writers give the same state other bytes (2: hosts.yml nests groups
under their parents and holds the region's whole tree; 3: the manifest escapes the paths it
lists, which a name holding '"' or '\\' broke), so that an ETag a client kept from an
earlier Craton never answers 304 for bytes it does not have."""
LAYOUTS = ("hosts", "ansible")
FORMATS = {
    "tgz": "application/gzip",
    "zip": "application/zip",
    "json": "application/json",
}
STREAM_ROWS = 5000
SECRET_ROWS = 64
"""Secrets read at once: their contents (at most 256 KiB each) are held until written."""


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
    ip_address: str | None
    fqdn: str | None
    ssh_port: int | None
    ssh_user: str | None
    groups: frozenset[int]


@dataclasses.dataclass(frozen=True, slots=True)
class SecretRecord:
    id: int
    host_id: int
    name: str
    kind: SecretKind


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
        self.sealer = backend if include_secrets else None
        """Unseals sensitive variables when the bundle holds secrets; they are "<hidden>"
        otherwise."""
        self._reachability = _reachability(session, spec.filter)
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
        self.snapshot = complete_snapshot(self.session, self.head, self.sealer)
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
                yield from stream_json(self)
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
            files.append(b'  %s: "%s"' % (json_key(entry.path).encode(),
                                         hashlib.sha256(entry.data).hexdigest().encode()))
            yield entry
        files.sort()
        yield Entry("manifest.json", json_document(self.manifest(Lines(files, b"{}"))))

    def host_variables(self) -> Iterator[tuple[HostRecord, dict[str, str]]]:
        """Each host (by name) with its own variables, streamed from one query."""
        stmt = (
            select(HostVariable.host_id, HostVariable.key, HostVariable.value_json,
                   HostVariable.sealed)
            .join(Host, Host.id == HostVariable.host_id)
            .where(*host_conditions(self.spec.filter))
            .order_by(Host.name, HostVariable.key)
        )
        hosts = iter(self.hosts)
        host = next(hosts, None)
        own: dict[str, str] = {}
        sealer = self.sealer
        rows = iter(raw_rows(self.session, stmt))
        # A batch's sealed values are opened at once (concurrently, when Barbican keeps them).
        while batch := list(itertools.islice(rows, STREAM_ROWS)):
            if sealer is not None and any(row[3] is not None for row in batch):
                opened = unsealed_all([(row[2], row[3]) for row in batch], sealer)
                batch = [(*row[:2], value, None) for row, value in zip(batch, opened, strict=True)]
            for host_id, key, value, _ in batch:
                while host is not None and host.id != host_id:
                    yield host, own
                    host, own = next(hosts, None), {}
                own[key] = value
        while host is not None:
            yield host, own
            host, own = next(hosts, None), {}

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
        rows = iter(self._stream(stmt, SECRET_ROWS))
        while batch := list(itertools.islice(rows, SECRET_ROWS)):
            contents = self.backend.open_many([ciphertext for _, ciphertext in batch])
            for (secret_id, _), content in zip(batch, contents, strict=True):
                yield by_id[secret_id], content

    def _stream(self, stmt: Any, rows: int) -> Iterator[Any]:
        """Rows of a plain column query through Core (no ORM row processing), fetched from a
        server-side cursor ``rows`` at a time."""
        # Options for this statement only: Connection.execution_options would set them on
        # the session's connection for every statement after it.
        result = self.session.connection().execute(
            stmt, execution_options={"stream_results": True, "yield_per": rows})
        for partition in result.partitions():
            yield from partition

    def manifest(self, files: Lines) -> dict[str, Any]:
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
            "hosts": Lines(hosts, b"[]"),
            "groups": [{"name": node.name,
                        "parents": sorted(names[p] for p in node.parents),
                        "depends_on": sorted(names[d] for d in node.depends_on)}
                       for node in sorted(graph.nodes.values(), key=lambda n: n.name)],
            "dependency_order": graph.dependency_levels(),
            "references": [ref.manifest_entry() for ref in self.snapshot.references],
            "files": files,
        }

    def _fingerprint(self) -> str:
        """A digest of what decides the bundle's bytes: the writers (their revision and
        Craton's version), the request (selection, layout, format, secrets or not), the
        region's inventory version — which every write that could change a bundle of the
        region moves on — what each reference was fetched at, and for a selection by
        ``reachable``, the hosts it selects."""
        state = {
            "bundle_format": BUNDLE_FORMAT, "writer": WRITER_REVISION, "craton": __version__,
            "spec": [self.spec.layout, self.spec.format, self.spec.filter.as_query()],
            "secrets": self.include_secrets,
            "region": [self.head.id, self.head.inventory_version],
            "references": [[r.id, r.pin] for r in self.head.references],
            "reachable": self._reachability,
        }
        digest = hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()
        return f'"b{BUNDLE_FORMAT}-{digest[:40]}"'


def prepare_bundle(db: Database, ctx: RequestContext, spec: BundleSpec, fetcher: Fetcher | None,
                   backend: SecretBackend, *, secrets: bool | None = None) -> PreparedBundle:
    """Read what the bundle is known by (the region, its references fetched) and compute its
    ETag; the rest is read when the bundle is built (:meth:`PreparedBundle.load`). The bundle
    holds the hosts' secrets when ``secrets`` says so (a job's, decided by its rights), by
    default when ``ctx`` may reveal them; a ``.json`` inventory never does."""
    if spec.layout not in LAYOUTS:
        raise InvalidInput(f"layout: must be one of {', '.join(LAYOUTS)}",
                           fields={"layout": f"must be one of {', '.join(LAYOUTS)}"})
    session = db.snapshot_session()
    try:
        head = load_head(session, ctx, spec.region_id, fetcher)
        spec = dataclasses.replace(
            spec, filter=dataclasses.replace(spec.filter, region_id=head.id))
        check_group_exists(session, ctx, spec.filter)
        include_secrets = spec.format != "json" and (
            ctx.can(Action.REVEAL_SECRETS) if secrets is None else secrets)
        return PreparedBundle(session, spec, head, include_secrets, backend)
    except BaseException:
        session.close()
        raise


def _reachability(session: Session, flt: HostFilter) -> str | None:
    """For a selection by ``reachable``: a digest of the hosts it selects. Jobs write that
    field without moving the region's inventory version (see craton.db.inventory_version),
    so only such a bundle's ETag reads the hosts — their ids."""
    if flt.reachable is None:
        return None
    digest = hashlib.sha256()
    for (host_id,) in raw_rows(session, select(Host.id).where(*host_conditions(flt))
                               .order_by(Host.id)):
        digest.update(b"%d," % host_id)
    return digest.hexdigest()


def _load_hosts(session: Session, flt: HostFilter) -> list[HostRecord]:
    conditions = host_conditions(flt)
    memberships: dict[int, list[int]] = defaultdict(list)
    for host_id, group_id in raw_rows(session, select(HostGroup.host_id, HostGroup.group_id)
                                      .join(Host, Host.id == HostGroup.host_id)
                                      .where(*conditions)):
        memberships[host_id].append(group_id)
    shared: dict[frozenset[int], frozenset[int]] = {}
    hosts: list[HostRecord] = []
    for row in raw_rows(session, select(Host.id, Host.name, Host.ip_address, Host.fqdn,
                                        Host.ssh_port, Host.ssh_user)
                        .where(*conditions).order_by(Host.name)):
        groups = frozenset(memberships.get(row[0], ()))
        hosts.append(HostRecord(*row, groups=shared.setdefault(groups, groups)))
    return hosts


def raw_rows(session: Session, stmt: Any, rows: int = STREAM_ROWS) -> Iterator[tuple[Any, ...]]:
    """Rows of a query whose columns need no conversion (integers and text), ``rows`` at a
    time. On SQLite they are the driver's own tuples — a Row object each would cost more
    than the rest of the row's way into the archive — read straight from its cursor, which
    steps through the result as it is read (SQLAlchemy reads ahead of the cursor only when
    asked to stream). Elsewhere they come from a server-side cursor, through SQLAlchemy."""
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        result = connection.execute(
            stmt, execution_options={"stream_results": True, "yield_per": rows})
        for partition in result.partitions():
            yield from partition
        return
    result = connection.execute(stmt)
    try:
        while batch := result.cursor.fetchmany(rows):
            yield from batch
    finally:
        result.close()


def _load_secrets(session: Session, flt: HostFilter) -> list[SecretRecord]:
    return [SecretRecord(*row) for row in session.connection().execute(
        select(Secret.id, Secret.host_id, Secret.name, Secret.kind)
        .join(Host, Host.id == Secret.host_id).where(*host_conditions(flt))
        .order_by(Secret.id))]


# --- names ------------------------------------------------------------------------------------

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
