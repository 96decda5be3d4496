"""The schema: tenants → regions → hosts and groups, their variables, secrets and references;
and the jobs run over them, with each job's hosts and events.

Conventions, kept by every table so MariaDB/Galera and SQLite behave alike:
- every table has a primary key and is InnoDB with utf8mb4 and a binary collation on MariaDB,
  so names compare case-sensitively there as they do in SQLite and in Ansible;
- ids are never reused (``sqlite_autoincrement``), so an id in a log always means one object;
- mutable objects carry ``created_at``, ``updated_at`` and ``version`` (optimistic concurrency:
  every UPDATE checks and bumps ``version``, which is also the object's ETag);
- variables live in one table per owner kind, one row per key, with the value as canonical JSON
  text and an indexed digest of it, so ``key=value`` filters are index lookups.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column, relationship

from craton.values import utcnow

NAME_LENGTH = 255
MAX_ID = 2**63 - 1
"""Ids are 64-bit signed integers in both databases; anything larger names nothing."""
VARIABLE_KEY_LENGTH = 255
KEYSTONE_ID_LENGTH = 64
"""Keystone's own column width for project ids."""

# Long text on MariaDB (TEXT stops at 64 KiB); plain TEXT elsewhere.
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
LongBinary = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
# Microsecond timestamps on MariaDB (DATETIME defaults to whole seconds there).
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

TABLE_OPTIONS = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
    "sqlite_autoincrement": True,
}
LINK_TABLE_OPTIONS = {k: v for k, v in TABLE_OPTIONS.items() if k != "sqlite_autoincrement"}

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Versioned:
    """created_at / updated_at / version for every mutable object."""

    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(Integer)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        return {"version_id_col": cls.__table__.c.version}


class HasVariables:
    variable_rows: Any

    @property
    def variables(self) -> dict[str, Any]:
        return {row.key: row.value for row in self.variable_rows}


class Tenant(Versioned, Base):
    __tablename__ = "tenants"
    # A unique index, not a constraint: SQLite adds one to a table only by copying it, and
    # copying tenants would cascade deletes through every table that refers to them.
    __table_args__ = (Index(None, "keystone_project_id", unique=True), TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    keystone_project_id: Mapped[str | None] = mapped_column(String(KEYSTONE_ID_LENGTH))
    """The Keystone project whose tokens act in this tenant ([api] auth_strategy = keystone)."""

    regions: Mapped[list[Region]] = relationship(back_populates="tenant", passive_deletes=True)
    quota_rows: Mapped[list[TenantQuota]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="TenantQuota.name")

    @property
    def quotas(self) -> dict[Quota, int]:
        """The quotas a cloud admin set on this tenant (the others are the configured
        defaults)."""
        return {row.name: row.maximum for row in self.quota_rows}


class Quota(enum.StrEnum):
    """What a tenant's quotas count (``[quotas]`` holds each one's default)."""

    HOSTS = "hosts"
    GROUPS = "groups"
    SECRETS = "secrets"
    CONCURRENT_JOBS = "concurrent_jobs"


class TenantQuota(Base):
    """A quota a cloud admin set on one tenant, overriding the configured default."""

    __tablename__ = "tenant_quotas"
    __table_args__ = (CheckConstraint("maximum >= 0", name="maximum"), LINK_TABLE_OPTIONS)

    tenant_id: Mapped[int] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[Quota] = mapped_column(
        Enum(Quota, native_enum=False, length=32, create_constraint=True,
             values_callable=lambda e: [m.value for m in e], name="name"),
        primary_key=True)
    maximum: Mapped[int] = mapped_column(Integer)


class Region(HasVariables, Versioned, Base):
    __tablename__ = "regions"
    __table_args__ = (UniqueConstraint("tenant_id", "name"), TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    description: Mapped[str | None] = mapped_column(Text)

    inventory_version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    """Moves on with every write that can change a bundle of the region — its hosts, groups,
    edges, variables, secrets and references (``craton.db.inventory_version``): the part of a
    bundle's ETag that stands for the database's state."""

    tenant: Mapped[Tenant] = relationship(back_populates="regions")
    variable_rows: Mapped[list[RegionVariable]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="RegionVariable.key"
    )


class HostState(enum.StrEnum):
    """Lifecycle of a host, as an operator tracks it."""

    DEFINED = "defined"
    CREATING = "creating"
    CREATED = "created"
    READY = "ready"
    STOPPING = "stopping"
    STOPPED = "stopped"
    TERMINATED = "terminated"


class Host(HasVariables, Versioned, Base):
    __tablename__ = "hosts"
    __table_args__ = (
        UniqueConstraint("region_id", "name"),
        Index(None, "ip_address"),
        Index(None, "region_id", "state"),
        CheckConstraint("ssh_port IS NULL OR (ssh_port BETWEEN 1 AND 65535)", name="ssh_port"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    fqdn: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    ssh_port: Mapped[int | None] = mapped_column(Integer)
    ssh_user: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[HostState] = mapped_column(
        Enum(HostState, native_enum=False, length=16, create_constraint=True,
             values_callable=lambda e: [m.value for m in e], name="state"),
        default=HostState.DEFINED,
    )
    reachable: Mapped[bool | None] = mapped_column()
    """What the last job that tried to reach the host found (None: never tried)."""
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)

    region: Mapped[Region] = relationship()
    variable_rows: Mapped[list[HostVariable]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="HostVariable.key"
    )
    groups: Mapped[list[Group]] = relationship(
        secondary="host_groups", back_populates="hosts", order_by="Group.name",
        passive_deletes=True,
    )
    secrets: Mapped[list[Secret]] = relationship(back_populates="host", passive_deletes=True)

    @property
    def group_names(self) -> list[str]:
        return [group.name for group in self.groups]


class Group(HasVariables, Versioned, Base):
    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("region_id", "name"), TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    description: Mapped[str | None] = mapped_column(Text)

    region: Mapped[Region] = relationship()
    variable_rows: Mapped[list[GroupVariable]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="GroupVariable.key"
    )
    hosts: Mapped[list[Host]] = relationship(
        secondary="host_groups", back_populates="groups", passive_deletes=True,
        order_by="Host.id",
    )
    children: Mapped[list[Group]] = relationship(
        secondary="group_children",
        primaryjoin="Group.id == GroupChild.parent_id",
        secondaryjoin="Group.id == GroupChild.child_id",
        back_populates="parents", order_by="Group.name", passive_deletes=True,
    )
    parents: Mapped[list[Group]] = relationship(
        secondary="group_children",
        primaryjoin="Group.id == GroupChild.child_id",
        secondaryjoin="Group.id == GroupChild.parent_id",
        back_populates="children", order_by="Group.name", passive_deletes=True,
    )
    depends_on: Mapped[list[Group]] = relationship(
        secondary="group_dependencies",
        primaryjoin="Group.id == GroupDependency.group_id",
        secondaryjoin="Group.id == GroupDependency.depends_on_id",
        order_by="Group.name", passive_deletes=True,
    )
    references: Mapped[list[Reference]] = relationship(
        back_populates="group", passive_deletes=True, order_by="Reference.name"
    )

    @property
    def child_names(self) -> list[str]:
        return [group.name for group in self.children]

    @property
    def parent_names(self) -> list[str]:
        return [group.name for group in self.parents]

    @property
    def depends_on_names(self) -> list[str]:
        return [group.name for group in self.depends_on]


class HostGroup(Base):
    """Direct membership of a host in a group."""

    __tablename__ = "host_groups"
    __table_args__ = (Index(None, "host_id"), LINK_TABLE_OPTIONS)

    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    host_id: Mapped[int] = mapped_column(
        ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True
    )


class GroupChild(Base):
    """A parent → child edge of the group DAG."""

    __tablename__ = "group_children"
    __table_args__ = (
        Index(None, "child_id"),
        CheckConstraint("parent_id <> child_id", name="not_self"),
        LINK_TABLE_OPTIONS,
    )

    parent_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    child_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )


class GroupDependency(Base):
    """``group_id`` runs only after ``depends_on_id`` (e.g. NFS clients after the NFS server)."""

    __tablename__ = "group_dependencies"
    __table_args__ = (
        Index(None, "depends_on_id"),
        CheckConstraint("group_id <> depends_on_id", name="not_self"),
        LINK_TABLE_OPTIONS,
    )

    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    depends_on_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )


class _VariableRow:
    """One variable of an owner: its key, canonical JSON value and the value's digest."""

    key: Mapped[str] = mapped_column(String(VARIABLE_KEY_LENGTH), primary_key=True)
    value_json: Mapped[str] = mapped_column(LongText)
    """The value; "<hidden>" for a sensitive one, so whatever reads it without unsealing
    shows that."""
    value_digest: Mapped[str] = mapped_column(String(20))
    sealed: Mapped[str | None] = mapped_column(LongText, active_history=True)
    """A sensitive value's canonical JSON, encrypted by the secrets backend; None otherwise.
    (The value it replaces is kept in the history: content kept outside the database is
    discarded with it, ``craton.db.discards``.)"""

    @property
    def value(self) -> Any:
        return json.loads(self.value_json)


class RegionVariable(_VariableRow, Base):
    __tablename__ = "region_variables"
    __table_args__ = (LINK_TABLE_OPTIONS,)

    region_id: Mapped[int] = mapped_column(
        ForeignKey("regions.id", ondelete="CASCADE"), primary_key=True
    )


class GroupVariable(_VariableRow, Base):
    __tablename__ = "group_variables"
    __table_args__ = (Index(None, "key", "value_digest"), LINK_TABLE_OPTIONS)

    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )


class HostVariable(_VariableRow, Base):
    __tablename__ = "host_variables"
    __table_args__ = (Index(None, "key", "value_digest"), LINK_TABLE_OPTIONS)

    host_id: Mapped[int] = mapped_column(
        ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True
    )
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    """The job whose playbook wrote this value (audit write-back); None when a user set it."""


class SecretKind(enum.StrEnum):
    SSH_PRIVATE_KEY = "ssh_private_key"
    PEM = "pem"
    PASSWORD = "password"
    OPAQUE = "opaque"


class Secret(Versioned, Base):
    """A blob kept for a host (an SSH key, a certificate); content encrypted at rest."""

    __tablename__ = "secrets"
    __table_args__ = (UniqueConstraint("host_id", "name"), TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    kind: Mapped[SecretKind] = mapped_column(
        Enum(SecretKind, native_enum=False, length=32, create_constraint=True,
             values_callable=lambda e: [m.value for m in e], name="kind")
    )
    size: Mapped[int] = mapped_column(Integer)
    backend: Mapped[str] = mapped_column(String(32))
    ciphertext: Mapped[bytes] = mapped_column(LongBinary, active_history=True)
    """The content sealed by ``backend``: Fernet's token, or ``barbican:<id>`` of the payload
    Barbican keeps (discarded with the row or the value it replaces, ``craton.db.discards``)."""

    host: Mapped[Host] = relationship(back_populates="secrets")


class Reference(Versioned, Base):
    """A group-variable YAML file kept elsewhere (git, http(s), file); fetched at bundle time."""

    __tablename__ = "references"
    __table_args__ = (UniqueConstraint("group_id", "name"), TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    url: Mapped[str] = mapped_column(String(2048))
    ref: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    path: Mapped[str | None] = mapped_column(String(1024))

    group: Mapped[Group] = relationship(back_populates="references")


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class JobLayout(enum.StrEnum):
    """How a job runs its hosts."""

    HOSTS = "hosts"
    """In waves by ``depends_on`` (one ansible-playbook run per wave); the default."""
    ANSIBLE = "ansible"
    """One ansible-playbook run over every host, ``depends_on`` not consulted."""


class HostRunStatus(enum.StrEnum):
    """Where one host is in one job."""

    PENDING = "pending"
    RUNNING = "running"
    OK = "ok"
    CHANGED = "changed"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    SKIPPED = "skipped"

    @property
    def finished(self) -> bool:
        return self not in (HostRunStatus.PENDING, HostRunStatus.RUNNING)

    @property
    def succeeded(self) -> bool:
        return self in (HostRunStatus.OK, HostRunStatus.CHANGED)


def _enum(kind: type[enum.Enum], length: int, name: str) -> Enum:
    return Enum(kind, native_enum=False, length=length, create_constraint=True,
                values_callable=lambda e: [m.value for m in e], name=name)


class Job(Versioned, Base):
    """A playbook run over a selection of a region, pinned so it can be explained and repeated:
    the source at a commit (or a directory snapshot's digest), the bundle's ETag."""

    __tablename__ = "jobs"
    __table_args__ = (Index(None, "region_id", "id"), Index(None, "status"), TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id", ondelete="CASCADE"))
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus, 16, "status"),
                                              default=JobStatus.PENDING)
    playbook: Mapped[str] = mapped_column(String(1024))
    source_url: Mapped[str | None] = mapped_column(String(2048))
    source_ref: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    source_pin: Mapped[str | None] = mapped_column(String(80))
    """commit:<sha> for git, sha256:<digest> of a directory snapshot; None for built-ins."""
    layout: Mapped[str] = mapped_column(String(16))
    filters_json: Mapped[str] = mapped_column(Text)
    plan_json: Mapped[str] = mapped_column(LongText)
    """Who waits for whom (depends_on), fixed at submission so a resumed run is the same."""
    forks: Mapped[int] = mapped_column(Integer)
    check_mode: Mapped[bool] = mapped_column(default=False)
    diff_mode: Mapped[bool] = mapped_column(default=False)
    extra_vars_json: Mapped[str] = mapped_column(LongText)
    bundle_etag: Mapped[str | None] = mapped_column(String(80))
    engine: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(NAME_LENGTH))
    submitter_roles: Mapped[str] = mapped_column(String(NAME_LENGTH), server_default="admin")
    """The submitter's roles (comma-separated), which the job acts with in its tenant: what its
    bundle may hold and whether its craton_audit write-backs may be written."""
    secrets: Mapped[str] = mapped_column(String(16), server_default="included")
    """included: the bundle holds the hosts' secrets (the submitter could use them); omitted:
    it holds none (the submitter asked for that)."""
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    message: Mapped[str | None] = mapped_column(Text)
    """Why it failed or was cancelled, when it did."""
    started_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    finished_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)

    region: Mapped[Region] = relationship()


class JobHost(Base):
    """One host's part in one job."""

    __tablename__ = "job_hosts"
    __table_args__ = (Index(None, "host_id", "job_id"), LINK_TABLE_OPTIONS)

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"),
                                        primary_key=True)
    host_name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    host_id: Mapped[int | None] = mapped_column(ForeignKey("hosts.id", ondelete="SET NULL"))
    status: Mapped[HostRunStatus] = mapped_column(_enum(HostRunStatus, 16, "status"),
                                                  default=HostRunStatus.PENDING)
    current_task: Mapped[str | None] = mapped_column(String(1024))
    message: Mapped[str | None] = mapped_column(Text)
    """Ansible's last message for the host: why it failed, was unreachable or was skipped."""
    started_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    finished_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)


class JobEvent(Base):
    """The durable record of a job: every Ansible event (trimmed) and TaskFlow state change,
    numbered per job. Readers resume by ``seq``; ``uuid`` keeps a replayed event out."""

    __tablename__ = "job_events"
    __table_args__ = (UniqueConstraint("job_id", "uuid"), LINK_TABLE_OPTIONS)

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"),
                                        primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    uuid: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    kind: Mapped[str] = mapped_column(String(64))
    host: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    data_json: Mapped[str] = mapped_column(LongText)


VARIABLE_MODELS: dict[type, type[_VariableRow]] = {
    Region: RegionVariable,
    Group: GroupVariable,
    Host: HostVariable,
}


class ApiKeyRole(enum.StrEnum):
    """What an API key may do inside its tenant (a cloud-admin key has no tenant)."""

    READER = "reader"
    MEMBER = "member"
    ADMIN = "admin"


class ApiKey(Base):
    """A credential for ``[api] auth_strategy = apikey``: ``craton_<key_id>_<secret>``. Only a
    keyed hash of the whole key is kept (``craton.identity.apikeys``); ``key_id`` is the public
    part the key is found by. Revoked keys stay, so a log line naming one still means it."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_tenant_id_id", "tenant_id", "id"), TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    """None: a cloud-admin key (made only with craton-manage)."""
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    role: Mapped[ApiKeyRole] = mapped_column(
        Enum(ApiKeyRole, native_enum=False, length=16, create_constraint=True,
             values_callable=lambda e: [m.value for m in e], name="role"))
    digest: Mapped[str] = mapped_column(String(64))
    """HMAC-SHA256 of the whole key under the server's API-key hash key, hex."""
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(NAME_LENGTH))
    last_used_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    expires_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)


class ChangeAction(enum.StrEnum):
    """What a change record says was done to its object."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    SUBMIT = "submit"
    """A job was submitted."""
    CANCEL = "cancel"
    """A job's cancellation was requested."""
    REVOKE = "revoke"
    """An API key was revoked."""


class Change(Base):
    """One write to one object, recorded in the write's own transaction
    (``craton.db.changes``): who, when, in which request, what, and the before and after of
    what changed. No foreign keys: a record outlives its object, its tenant and its job.
    Never holds a secret's content, an API key or a sensitive variable's value."""

    __tablename__ = "changes"
    __table_args__ = (
        Index(None, "tenant_id", "id"),
        Index(None, "object_type", "object_id", "id"),
        Index(None, "actor_user", "id"),
        Index(None, "request_id"),
        Index(None, "created_at"),
        TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"),
                                    primary_key=True)
    """64-bit on MariaDB (records outnumber objects); SQLite's INTEGER is 64-bit already and
    only it autoincrements."""
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    request_id: Mapped[str | None] = mapped_column(String(128))
    tenant_id: Mapped[int | None] = mapped_column(Integer)
    """The tenant the object belongs to (what scopes the record); None for a cloud-admin API
    key."""
    region_id: Mapped[int | None] = mapped_column(Integer)
    object_type: Mapped[str] = mapped_column(String(16))
    object_id: Mapped[int] = mapped_column(Integer)
    object_name: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    action: Mapped[ChangeAction] = mapped_column(_enum(ChangeAction, 16, "action"))
    actor_user: Mapped[str] = mapped_column(String(NAME_LENGTH))
    actor_tenant_id: Mapped[int | None] = mapped_column(Integer)
    """The caller's own tenant; None for a cloud admin."""
    auth_strategy: Mapped[str] = mapped_column(String(16))
    api_key_name: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    job_id: Mapped[int | None] = mapped_column(Integer)
    """Set when a job wrote it (a playbook's ``craton_audit`` facts)."""
    reason: Mapped[str | None] = mapped_column(String(500))
    diff_json: Mapped[str] = mapped_column(LongText)
    """``{"fields": {name: {"before", "after"}}, "variables": {key: {"before", "after"}},
    "links": {name: {"added": [...], "removed": [...]}}}``; "before" (or "after") is left
    out where the field or key did not exist."""

    @property
    def diff(self) -> dict[str, Any]:
        return json.loads(self.diff_json)


class PayloadDiscard(Base):
    """Content kept outside the database (a Barbican payload) whose secret or sensitive
    variable is gone — deleted, replaced, or dropped with its host, group, region or tenant.
    Recorded in the transaction that drops the row (``craton.db.discards``), removed once the
    payload is deleted (``craton.secrets.outbox``): a payload is never deleted while a row
    still refers to it, and never forgotten when deleting it fails."""

    __tablename__ = "payload_discards"
    __table_args__ = (Index(None, "created_at"), LINK_TABLE_OPTIONS)

    ref: Mapped[str] = mapped_column(String(255), primary_key=True)
    """The sealed value as rows kept it: ``barbican:<secret id>``."""
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    """Deletes that failed so far."""
    last_error: Mapped[str | None] = mapped_column(String(255))
    """Why the last one failed (the store's message: never content)."""
