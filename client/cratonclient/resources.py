"""Typed objects for what ``/v1`` serves.

Each object keeps the body the server last sent and its ETag. Attributes are read from that
body (copied on first use, so changing ``host.variables`` in place changes only the object);
:meth:`Resource.save` sends the editable attributes that differ from it as one ``PATCH`` with
``If-Match``, so a change someone else made meanwhile is never overwritten: it raises
:class:`~cratonclient.errors.Conflict` (412) instead.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, overload

if TYPE_CHECKING:
    from cratonclient.client import Client
    from cratonclient.managers import Page

T = TypeVar("T")
R = TypeVar("R", bound="Resource")

JOB_FINISHED = frozenset({"succeeded", "failed", "cancelled"})
HOST_SUCCEEDED = frozenset({"ok", "changed"})


class Field(Generic[T]):
    """One attribute of a resource, read from the server's body."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> Field[T]: ...

    @overload
    def __get__(self, obj: object, owner: type) -> T: ...

    def __get__(self, obj: object | None, owner: type) -> Field[T] | T:
        if obj is None:
            return self
        values = obj.__dict__
        if self.name not in values:
            raw = obj._body.get(self.name)  # type: ignore[attr-defined]
            values[self.name] = copy.deepcopy(raw) if isinstance(raw, dict | list) else raw
        return values[self.name]  # type: ignore[no-any-return]

    def __set__(self, obj: object, value: T) -> None:
        obj.__dict__[self.name] = value


class Resource:
    """Base of the typed objects. ``etag`` is the ETag of the version this object shows."""

    endpoint: ClassVar[str] = ""
    """Where one object lives, ``/v1/hosts/{id}``."""
    editable: ClassVar[tuple[str, ...]] = ()
    """Attributes save() may send."""
    merged: ClassVar[frozenset[str]] = frozenset()
    """Editable mappings the server merges (a null value deletes a key)."""

    id = Field[int]()
    version = Field[int]()
    created_at = Field["str | None"]()
    updated_at = Field["str | None"]()

    def __init__(self, client: Client | None, body: Mapping[str, Any],
                 etag: str | None = None) -> None:
        self._client = client
        self._load(body, etag)

    def _load(self, body: Mapping[str, Any], etag: str | None) -> None:
        for name in [key for key in self.__dict__ if not key.startswith("_")]:
            del self.__dict__[name]
        self._body = body
        version = body.get("version")
        self.etag = etag or (f'"{version}"' if isinstance(version, int) else None)

    @property
    def client(self) -> Client:
        if self._client is None:
            raise ValueError(f"this {type(self).__name__} is not bound to a Client")
        return self._client

    @property
    def location(self) -> str:
        """This object's API path."""
        return self.endpoint.format(id=self._body["id"])

    def to_dict(self) -> dict[str, Any]:
        """The object as the server last showed it, with local changes applied."""
        shown = copy.deepcopy(dict(self._body))
        shown.update({k: v for k, v in self.__dict__.items() if not k.startswith("_")
                      and k != "etag"})
        return shown

    def changes(self) -> dict[str, Any]:
        """What save() would send: each editable attribute that differs from the server's
        body (for a merged mapping, the keys that changed, removed ones as None)."""
        sent: dict[str, Any] = {}
        for name in self.editable:
            if name not in self.__dict__:
                continue
            now, before = self.__dict__[name], self._body.get(name)
            if now == before:
                continue
            if name in self.merged and isinstance(now, dict) and isinstance(before, dict):
                sent[name] = {key: value for key, value in now.items()
                              if key not in before or before[key] != value}
                sent[name].update({key: None for key in before if key not in now})
            else:
                sent[name] = now
        return sent

    def save(self) -> bool:
        """Send the changed attributes (``PATCH`` with ``If-Match``); False when there was
        nothing to send. Raises Conflict when the object changed on the server since it was
        read: :meth:`refresh` and apply the change again."""
        changes = self.changes()
        if not changes:
            return False
        response = self.client.transport.request("PATCH", self.location, json=changes,
                                                 headers=self._if_match())
        self._load(response.json(), response.headers.get("ETag"))
        return True

    def refresh(self: R) -> R:
        """Read the object again, dropping local changes."""
        response = self.client.transport.request("GET", self.location)
        self._load(response.json(), response.headers.get("ETag"))
        return self

    def delete(self) -> None:
        """Delete the object, only if it is still the version this object shows."""
        self.client.transport.request("DELETE", self.location, headers=self._if_match())

    def _if_match(self) -> dict[str, str]:
        return {"If-Match": self.etag} if self.etag else {}

    def _set_etag(self, etag: str | None) -> None:
        """A write through this object (variables, members) moved it to a new version."""
        if etag:
            self.etag = etag
            version = etag.strip('"')
            if version.isdigit() and isinstance(self._body.get("version"), int):
                self._body = {**self._body, "version": int(version)}
                self.__dict__.pop("version", None)

    def __repr__(self) -> str:
        name = self._body.get("name")
        label = f" {name!r}" if name is not None else ""
        return f"<{type(self).__name__} {self._body.get('id')}{label}>"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._body.get("id") == self._body.get("id") \
            and self._body.get("id") is not None  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._body.get("id")))


class Provenance:
    """Where one resolved variable came from: ``source`` names the region, group, reference
    or host that set it (``{"type", "id", "name"}``); with ``provenance="full"``,
    ``overridden`` lists what it overrode (each ``{"source", "value"}``), lowest first."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        self.source: dict[str, Any] = dict(body.get("source") or {})
        self.overridden: list[dict[str, Any]] | None = body.get("overridden")

    @property
    def type(self) -> str:
        """region, group, reference or host."""
        return str(self.source.get("type", ""))

    def describe(self) -> str:
        """``group compute``, ``host web-1``, ``reference base``…"""
        name = self.source.get("name")
        label = str(name) if name is not None else f"#{self.source.get('id')}"
        return f"{self.type} {label}".strip()

    def __repr__(self) -> str:
        return f"<Provenance {self.describe()}>"


class Variables:
    """An owner's variables; for a host's resolved ones, ``provenance`` maps each key to where
    its value came from."""

    def __init__(self, body: Mapping[str, Any], etag: str | None = None) -> None:
        self.variables: dict[str, Any] = dict(body.get("variables") or {})
        raw = body.get("provenance")
        self.provenance: dict[str, Provenance] | None = None if raw is None else {
            key: Provenance(value) for key, value in raw.items()}
        self.etag = etag

    def __getitem__(self, key: str) -> Any:
        return self.variables[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.variables)

    def __len__(self) -> int:
        return len(self.variables)

    def __repr__(self) -> str:
        return f"<Variables {sorted(self.variables)}>"


class VariablesOwner(Resource):
    """Regions, groups and hosts: they have variables, served under ``…/variables``."""

    variables = Field[dict[str, Any]]()

    def update_variables(self, changes: Mapping[str, Any]) -> Variables:
        """Merge ``changes`` into the variables (None deletes a key), if the object is still
        the version this one shows (If-Match)."""
        return self._write_variables("PATCH", changes)

    def replace_variables(self, variables: Mapping[str, Any]) -> Variables:
        """Replace all the variables (If-Match)."""
        return self._write_variables("PUT", variables)

    def delete_variable(self, key: str) -> None:
        """Remove one variable (If-Match)."""
        from urllib.parse import quote

        response = self.client.transport.request(
            "DELETE", f"{self.location}/variables/{quote(key, safe='')}", headers=self._if_match())
        self._set_etag(response.headers.get("ETag"))
        self._forget_variables()

    def get_variables(self) -> Variables:
        """The object's own variables, as the server has them now."""
        response = self.client.transport.request("GET", f"{self.location}/variables")
        return Variables(response.json(), response.headers.get("ETag"))

    def _write_variables(self, method: str, variables: Mapping[str, Any]) -> Variables:
        response = self.client.transport.request(method, f"{self.location}/variables",
                                                 json={"variables": dict(variables)},
                                                 headers=self._if_match())
        shown = Variables(response.json(), response.headers.get("ETag"))
        self._set_etag(shown.etag)
        self._body = {**self._body, "variables": shown.variables}
        self.__dict__.pop("variables", None)
        return shown

    def _forget_variables(self) -> None:
        self.__dict__.pop("variables", None)
        self._body = {k: v for k, v in self._body.items() if k != "variables"}


class Tenant(Resource):
    endpoint = "/v1/tenants/{id}"
    editable = ("name", "description", "quotas")

    name = Field[str]()
    description = Field["str | None"]()
    quotas = Field[dict[str, int]]()

    def regions(self) -> Page[Region]:
        return self.client.regions.list(tenant=self._body["id"])

    def create_region(self, name: str, **fields: Any) -> Region:
        return self.client.regions.create(self._body["id"], name, **fields)

    def apikeys(self) -> Page[ApiKey]:
        return self.client.apikeys.list(self._body["id"])

    def delete(self, cascade: bool = False) -> None:
        """Delete the tenant (``cascade``: with its regions and everything in them)."""
        self.client.transport.request("DELETE", self.location, params={"cascade": cascade or None},
                                      headers=self._if_match())


class Region(VariablesOwner):
    endpoint = "/v1/regions/{id}"
    editable = ("name", "description", "variables")
    merged = frozenset({"variables"})

    tenant_id = Field[int]()
    name = Field[str]()
    description = Field["str | None"]()

    def hosts(self, **filters: Any) -> Page[Host]:
        return self.client.hosts.list(region=self._body["id"], **filters)

    def groups(self, **filters: Any) -> Page[Group]:
        return self.client.groups.list(region=self._body["id"], **filters)

    def create_host(self, name: str, **fields: Any) -> Host:
        return self.client.hosts.create(self._body["id"], name, **fields)

    def create_hosts(self, hosts: list[Mapping[str, Any]]) -> list[Host]:
        return self.client.hosts.create_many(self._body["id"], hosts)

    def create_group(self, name: str, **fields: Any) -> Group:
        return self.client.groups.create(self._body["id"], name, **fields)

    def delete(self, cascade: bool = False) -> None:
        """Delete the region (``cascade``: with its hosts and groups)."""
        self.client.transport.request("DELETE", self.location, params={"cascade": cascade or None},
                                      headers=self._if_match())


class Group(VariablesOwner):
    endpoint = "/v1/groups/{id}"
    editable = ("name", "description", "variables", "children", "depends_on")
    merged = frozenset({"variables"})

    region_id = Field[int]()
    name = Field[str]()
    description = Field["str | None"]()
    parents = Field[list[str]]()
    children = Field[list[str]]()
    depends_on = Field[list[str]]()

    def hosts(self, descendants: bool = False) -> Page[Host]:
        """The group's hosts (``descendants``: also those of its subgroups)."""
        return self.client.groups.hosts(self._body["id"], descendants=descendants)

    def add_hosts(self, *hosts: int | str) -> None:
        """Add hosts (ids or names of the group's region)."""
        self._members("POST", "hosts", {"hosts": list(hosts)})

    def remove_hosts(self, *hosts: int | str) -> None:
        self._members("DELETE", "hosts", {"hosts": list(hosts)})

    def add_children(self, *groups: int | str) -> None:
        """Make groups (ids or names) subgroups of this one; Conflict if that closes a
        cycle."""
        self._members("POST", "children", {"children": list(groups)})

    def remove_children(self, *groups: int | str) -> None:
        self._members("DELETE", "children", {"children": list(groups)})

    def references(self) -> Page[Reference]:
        return self.client.references.list(self._body["id"])

    def create_reference(self, name: str, url: str, **fields: Any) -> Reference:
        return self.client.references.create(self._body["id"], name, url, **fields)

    def _members(self, method: str, what: str, body: dict[str, Any]) -> None:
        response = self.client.transport.request(method, f"{self.location}/{what}", json=body)
        self._set_etag(response.headers.get("ETag"))
        self.refresh()


class Host(VariablesOwner):
    endpoint = "/v1/hosts/{id}"
    editable = ("name", "fqdn", "ip_address", "ssh_port", "ssh_user", "state", "groups",
                "variables")
    merged = frozenset({"variables"})

    region_id = Field[int]()
    name = Field[str]()
    fqdn = Field["str | None"]()
    ip_address = Field["str | None"]()
    ssh_port = Field["int | None"]()
    ssh_user = Field["str | None"]()
    state = Field[str]()
    groups = Field[list[str]]()
    reachable = Field["bool | None"]()
    last_seen_at = Field["str | None"]()

    def resolved_variables(self, provenance: bool | str = True) -> Variables:
        """The variables Ansible will see for this host, each with where it came from
        (``provenance="full"`` adds what each value overrode)."""
        return self.client.hosts.resolved_variables(self._body["id"], provenance=provenance)

    def status(self) -> HostStatus:
        return self.client.hosts.status(self._body["id"])

    def jobs(self) -> Page[HostJob]:
        return self.client.hosts.jobs(self._body["id"])

    def secrets(self) -> Page[Secret]:
        return self.client.secrets.list(self._body["id"])

    def create_secret(self, name: str, content: str, kind: str = "opaque") -> Secret:
        return self.client.secrets.create(self._body["id"], name, content, kind=kind)


class Secret(Resource):
    """A secret's metadata; its content only through :meth:`reveal`."""

    endpoint = "/v1/secrets/{id}"
    editable = ("name", "kind", "content")

    host_id = Field[int]()
    name = Field[str]()
    kind = Field[str]()
    size = Field[int]()
    content = Field["str | None"]()
    """Never shown by the server; set it and save() to replace the content."""

    def reveal(self) -> str:
        return self.client.secrets.reveal(self._body["id"])


class Reference(Resource):
    """A group's variables file kept elsewhere (git, http(s), file)."""

    endpoint = "/v1/references/{id}"
    editable = ("name", "url", "ref", "path")

    group_id = Field[int]()
    name = Field[str]()
    url = Field[str]()
    ref = Field["str | None"]()
    path = Field["str | None"]()


class ApiKey(Resource):
    """An API key's record; ``key`` is set only in the answer that created it."""

    endpoint = "/v1/apikeys/{id}"

    tenant_id = Field["int | None"]()
    name = Field[str]()
    role = Field[str]()
    prefix = Field[str]()
    created_by = Field["str | None"]()
    expires_at = Field["str | None"]()
    last_used_at = Field["str | None"]()
    revoked_at = Field["str | None"]()
    key = Field["str | None"]()

    def revoke(self) -> None:
        self.client.transport.request("DELETE", self.location)

    def __repr__(self) -> str:
        return f"<ApiKey {self._body.get('id')} {self._body.get('name')!r}>"


class HostStatus(Resource):
    """Where a host is at: reachable, last seen, its last job's result."""

    host_id = Field[int]()
    name = Field[str]()
    reachable = Field["bool | None"]()
    last_seen_at = Field["str | None"]()
    job = Field["dict[str, Any] | None"]()


class HostJob(Resource):
    """One job a host took part in, with the host's result in it."""

    job_id = Field[int]()
    job_status = Field[str]()
    status = Field[str]()
    playbook = Field[str]()
    region_id = Field[int]()
    current_task = Field["str | None"]()
    message = Field["str | None"]()
    started_at = Field["str | None"]()
    finished_at = Field["str | None"]()


class JobHost(Resource):
    """One host of a job: its state, current task and Ansible's last message."""

    host_id = Field[int]()
    name = Field[str]()
    status = Field[str]()
    groups = Field[list[str]]()
    current_task = Field["str | None"]()
    message = Field["str | None"]()
    started_at = Field["str | None"]()
    finished_at = Field["str | None"]()


class JobEvent(Resource):
    """One recorded event of a job (``seq`` numbers them without gaps)."""

    seq = Field[int]()
    kind = Field[str]()
    host = Field["str | None"]()
    data = Field[dict[str, Any]]()

    def __repr__(self) -> str:
        return f"<JobEvent {self._body.get('seq')} {self._body.get('kind')}>"


class Job(Resource):
    """A playbook run over a selection of a region."""

    endpoint = "/v1/jobs/{id}"

    region_id = Field[int]()
    status = Field[str]()
    playbook = Field[str]()
    source = Field["dict[str, Any] | None"]()
    filters = Field["dict[str, Any] | None"]()
    layout = Field[str]()
    forks = Field[int]()
    check = Field[bool]()
    diff = Field[bool]()
    extra_vars = Field["dict[str, Any] | None"]()
    hosts = Field[dict[str, int]]()
    """How many hosts are in each state (and ``total``)."""
    progress = Field[int]()
    message = Field["str | None"]()
    bundle_etag = Field["str | None"]()
    created_by = Field["str | None"]()
    started_at = Field["str | None"]()
    finished_at = Field["str | None"]()
    duration = Field["float | None"]()
    cancel_requested = Field[bool]()
    last_event = Field["int | None"]()

    @property
    def finished(self) -> bool:
        return self._body.get("status") in JOB_FINISHED

    def cancel(self) -> Job:
        response = self.client.transport.request("POST", f"{self.location}/cancel")
        self._load(response.json(), response.headers.get("ETag"))
        return self

    def wait(self, timeout: float | None = None, interval: float = 0.5) -> Job:
        """Wait until the job has ended, following its event stream (polling only when the
        stream cannot be opened: see :meth:`cratonclient.managers.Jobs.wait`), and show it
        as it then is. Past ``timeout`` seconds, :class:`~cratonclient.errors.JobTimeout`."""
        ended = self.client.jobs.wait(self._body["id"], timeout, interval=interval)
        self._load(ended._body, ended.etag)
        return self

    def host_states(self, status: str | list[str] | None = None) -> Page[JobHost]:
        return self.client.jobs.hosts(self._body["id"], status=status)

    def events(self, after: int | None = None) -> Page[JobEvent]:
        return self.client.jobs.events(self._body["id"], after=after)

    def stream(self, last_event_id: int | None = None) -> Iterator[JobEvent]:
        return self.client.jobs.stream(self._body["id"], last_event_id=last_event_id)
