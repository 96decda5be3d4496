"""Request and response shapes of /v1, which also make the OpenAPI document.

Schemas check types and shapes; the domain modules check meaning (names, addresses, cycles), so
every client of the domain — the API, the demo loader, jobs — gets the same rules.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import marshmallow as ma
from flask import current_app
from marshmallow import fields, validate

from craton.config import MAX_LIMIT
from craton.db.models import (
    KEYSTONE_ID_LENGTH,
    MAX_ID,
    ApiKeyRole,
    ChangeAction,
    HostRunStatus,
    HostState,
    JobLayout,
    JobStatus,
    SecretKind,
)
from craton.inventory.quotas import effective_quotas
from craton.values import iso_utc


class Schema(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class UTCDateTime(fields.DateTime):
    """Stored naive UTC; shown as ISO 8601 with a Z."""

    def _serialize(self, value: dt.datetime | None, attr: str | None, obj: Any,
                   **kwargs: Any) -> str | None:
        return iso_utc(value.replace(tzinfo=None) if value is not None else None)


class IdOrName(fields.Field):
    """An object named by its id (integer) or its name (string)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("metadata", {"oneOf": [{"type": "integer"}, {"type": "string"}]})
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int | str:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ma.ValidationError("must be an id (integer) or a name (string)")
        if isinstance(value, int) and not 1 <= value <= MAX_ID:
            raise ma.ValidationError(f"must be an id between 1 and {MAX_ID}")
        if isinstance(value, str) and not 1 <= len(value) <= 255:
            raise ma.ValidationError("must be a name of 1 to 255 characters")
        return value


def Description(**kwargs: Any) -> fields.String:
    return fields.String(allow_none=True, validate=validate.Length(max=4000), **kwargs)


def Id(**kwargs: Any) -> fields.Integer:
    """An object id: what the databases can hold (larger ids name nothing)."""
    return fields.Integer(validate=validate.Range(min=1, max=MAX_ID), **kwargs)


def Marker(**kwargs: Any) -> fields.Integer:
    return fields.Integer(validate=validate.Range(min=0, max=MAX_ID), metadata={
        "description": "The id of the last item already seen."}, **kwargs)


def Variables(**kwargs: Any) -> fields.Dict:
    return fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True), **kwargs)


class JsonText(fields.Field):
    """A column that stores JSON text, shown as the value it holds."""

    def _serialize(self, value: str | None, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else json.loads(value)


def RefList(**kwargs: Any) -> fields.List:
    return fields.List(IdOrName(), **kwargs)


class Stamped(Schema):
    """Fields every stored object has; shown first (id) and last (the bookkeeping)."""

    LAST = ("created_at", "updated_at", "version")

    id = fields.Integer(dump_only=True)
    created_at = UTCDateTime(dump_only=True)
    updated_at = UTCDateTime(dump_only=True)
    version = fields.Integer(dump_only=True, metadata={
        "description": "Moves on with every change; the ETag is this number quoted."})

    @ma.post_dump
    def _bookkeeping_last(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        ordered = {key: value for key, value in data.items() if key not in self.LAST}
        ordered.update((key, data[key]) for key in self.LAST if key in data)
        return ordered


# --- Tenants and regions -----------------------------------------------------------------------

def QuotaValue(what: str) -> fields.Integer:
    return fields.Integer(strict=True, allow_none=True, validate=validate.Range(0, MAX_LIMIT),
                          metadata={"description": what})


class QuotasSchema(Schema):
    """A tenant's quotas. Read: each one in force. Written (by a cloud admin): a number sets
    the tenant's own, null puts it back to the configured default ([quotas])."""

    hosts = QuotaValue("Hosts the tenant may have, across its regions.")
    groups = QuotaValue("Groups the tenant may have, across its regions.")
    secrets = QuotaValue("Secrets the tenant may have, across its hosts.")
    concurrent_jobs = QuotaValue("Jobs of the tenant that may be pending or running at once.")


class TenantQuotas(fields.Nested):
    """Shows each quota in force for the tenant: its own where a cloud admin set one, else the
    configured default (so a tenant can see its limits)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(QuotasSchema, **kwargs)

    def _serialize(self, nested_obj: Any, attr: str | None, obj: Any,
                   **kwargs: Any) -> dict[str, int]:
        defaults = current_app.extensions["craton"].settings.quotas
        return effective_quotas(nested_obj, defaults)


def KeystoneProjectId() -> fields.String:
    return fields.String(
        allow_none=True, validate=validate.Length(min=1, max=KEYSTONE_ID_LENGTH),
        metadata={"description": "The Keystone project whose tokens act in this tenant "
                                 "([api] auth_strategy = keystone); at most one tenant per "
                                 "project."})


class TenantSchema(Stamped):
    name = fields.String(required=True)
    description = Description()
    keystone_project_id = KeystoneProjectId()
    quotas = TenantQuotas(metadata={"description": "Set or changed by cloud admins only."})


class TenantPatchSchema(Schema):
    name = fields.String()
    description = Description()
    keystone_project_id = KeystoneProjectId()
    quotas = fields.Nested(QuotasSchema, metadata={
        "description": "Merged: a number sets a quota, null puts it back to the default."})


class RegionSchema(Stamped):
    tenant_id = fields.Integer(dump_only=True)
    name = fields.String(required=True)
    description = Description()
    variables = Variables(load_default=dict)


class RegionPatchSchema(Schema):
    name = fields.String()
    description = Description()
    variables = Variables(metadata={"description": "Merged: a null value deletes the key."})


class PageArgs(Schema):
    limit = fields.Integer(validate=validate.Range(min=1), metadata={
        "description": "Items per page (capped at the server's max_page_size)."})
    marker = Marker()


class RegionListArgs(PageArgs):
    tenant_id = Id()
    name = fields.String()


class DeleteArgs(Schema):
    cascade = fields.Boolean(load_default=False, metadata={
        "description": "Also delete everything inside (otherwise a non-empty parent is 409)."})


# --- Import ------------------------------------------------------------------------------------

class ImportSchema(Schema):
    format = fields.String(required=True, validate=validate.OneOf(
        ("ini", "yaml", "json", "directory")), metadata={
        "description": "ini, yaml (Ansible's inventory formats), json (a dynamic-inventory "
                       "script's output) or directory (files: inventory files beside "
                       "group_vars/ and host_vars/)."})
    content = fields.String(metadata={"description": "The inventory's text (not directory)."})
    files = fields.Dict(keys=fields.String(), values=fields.String(), metadata={
        "description": "A directory inventory: relative path → file text."})


class ImportArgs(Schema):
    dry_run = fields.Boolean(load_default=False, metadata={
        "description": "Answer the plan without changing anything."})


class CreatedChangedSchema(Schema):
    created = fields.List(fields.String())
    changed = fields.List(fields.String())


class ImportPlanSchema(Schema):
    dry_run = fields.Boolean()
    region = fields.Dict(keys=fields.String(), values=fields.Boolean())
    groups = fields.Nested(CreatedChangedSchema)
    hosts = fields.Nested(CreatedChangedSchema)
    ignored_variables = fields.Dict(keys=fields.String(), values=fields.List(fields.String()),
                                    metadata={"description": "Variables the inventory set "
                                              "that Ansible sets itself (and so ignores), by "
                                              "group or host: not imported."})


# --- Hosts -------------------------------------------------------------------------------------

class HostSchema(Stamped):
    region_id = fields.Integer(dump_only=True)
    name = fields.String(required=True)
    ip_address = fields.String(allow_none=True)
    fqdn = fields.String(allow_none=True)
    ssh_port = fields.Integer(allow_none=True, strict=True)
    ssh_user = fields.String(allow_none=True)
    state = fields.Enum(HostState, by_value=True, load_default=HostState.DEFINED)
    variables = Variables(load_default=dict)
    groups = fields.List(fields.String(), attribute="group_names", dump_only=True,
                         metadata={"description": "Names of the groups it is a direct member of"})
    reachable = fields.Boolean(dump_only=True, allow_none=True, metadata={
        "description": "Whether the last job that tried reached it (null: never tried)."})
    last_seen_at = UTCDateTime(dump_only=True, allow_none=True)


class HostCreateSchema(HostSchema):
    groups = RefList(load_default=list, metadata={
        "description": "Groups (ids or names, of the same region) to join."})

    class Meta:
        exclude = ("id", "created_at", "updated_at", "version", "region_id")


class HostPatchSchema(Schema):
    name = fields.String()
    ip_address = fields.String(allow_none=True)
    fqdn = fields.String(allow_none=True)
    ssh_port = fields.Integer(allow_none=True, strict=True)
    ssh_user = fields.String(allow_none=True)
    state = fields.Enum(HostState, by_value=True)
    variables = Variables(metadata={"description": "Merged: a null value deletes the key."})
    groups = RefList(metadata={"description": "Replaces the host's direct group memberships."})


class HostFilterArgs(Schema):
    region_id = Id()
    id = fields.List(Id(), metadata={"description": "Host ids (repeatable)."})
    name = fields.String(metadata={"description": "Exact name, or a glob with * and ?"})
    group = fields.String(metadata={
        "description": "Members of this group or of any of its subgroups."})
    var = fields.List(fields.String(), metadata={
        "description": "key:value — the host's own variable equals value (JSON or text); "
                       "key alone — the variable is set. Repeatable; all must match."})
    state = fields.List(fields.Enum(HostState, by_value=True),
                        metadata={"description": "Lifecycle state (repeatable: any of)."})
    ip_address = fields.String()
    reachable = fields.Boolean(metadata={
        "description": "What the last job found; hosts never tried match neither value."})


class HostListArgs(HostFilterArgs, PageArgs):
    pass


class RegionHostListArgs(HostListArgs):
    class Meta:
        exclude = ("region_id",)


class BundleArgs(HostFilterArgs):
    layout = fields.String(load_default="hosts", validate=validate.OneOf(("hosts", "ansible")),
                           metadata={"description": "hosts: one private data dir per host; "
                                                    "ansible: one inventory for the selection"})

    class Meta:
        exclude = ("region_id",)


class ResolvedArgs(Schema):
    resolved = fields.Boolean(load_default=False, metadata={
        "description": "Hosts only: the variables Ansible will see, with their provenance."})
    provenance = fields.String(load_default="winner", validate=validate.OneOf(
        ("winner", "full")), metadata={
        "description": "full: also every value the winning one overrode"})


# --- Groups ------------------------------------------------------------------------------------

class GroupSchema(Stamped):
    region_id = fields.Integer(dump_only=True)
    name = fields.String(required=True)
    description = Description()
    variables = Variables(load_default=dict)
    children = fields.List(fields.String(), attribute="child_names", dump_only=True)
    parents = fields.List(fields.String(), attribute="parent_names", dump_only=True)
    depends_on = fields.List(fields.String(), attribute="depends_on_names", dump_only=True,
                             metadata={"description": "Groups whose hosts must finish first."})


class GroupCreateSchema(Schema):
    name = fields.String(required=True)
    description = Description()
    variables = Variables(load_default=dict)
    children = RefList(load_default=list)
    parents = RefList(load_default=list)
    depends_on = RefList(load_default=list)
    hosts = RefList(load_default=list, metadata={"description": "Direct members to add."})


class GroupPatchSchema(Schema):
    name = fields.String()
    description = Description()
    variables = Variables(metadata={"description": "Merged: a null value deletes the key."})
    children = RefList(metadata={"description": "Replaces the subgroups."})
    depends_on = RefList(metadata={"description": "Replaces the dependencies."})


class GroupListArgs(PageArgs):
    region_id = Id()
    name = fields.String()


class MembersSchema(Schema):
    hosts = RefList(required=True, validate=validate.Length(min=1))


class ChildrenSchema(Schema):
    children = RefList(required=True, validate=validate.Length(min=1))


class MemberListArgs(PageArgs):
    descendants = fields.Boolean(load_default=False, metadata={
        "description": "Also list hosts of every subgroup."})


class ChangedSchema(Schema):
    changed = fields.List(fields.Integer(), metadata={
        "description": "Ids whose membership changed; ids already so are left out."})


# --- Secrets and references --------------------------------------------------------------------

class SecretSchema(Stamped):
    host_id = fields.Integer(dump_only=True)
    name = fields.String(required=True)
    kind = fields.Enum(SecretKind, by_value=True, required=True)
    size = fields.Integer(dump_only=True, metadata={"description": "Content length in bytes."})
    content = fields.String(required=True, load_only=True)


class SecretPatchSchema(Schema):
    name = fields.String()
    kind = fields.Enum(SecretKind, by_value=True)
    content = fields.String(load_only=True)


class RevealedSecretSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    kind = fields.Enum(SecretKind, by_value=True)
    content = fields.String()


class ReferenceSchema(Stamped):
    group_id = fields.Integer(dump_only=True)
    name = fields.String(required=True)
    url = fields.String(required=True, metadata={
        "description": "git://, http(s):// or file:/// URL of a YAML file or repository. "
                       "Refused (422) when the server may not read it: a file outside the "
                       "group's tenant's [sources] file_roots, or a host that is a loopback, "
                       "private, link-local or own address (unless [sources] "
                       "allowed_networks lists it) or localhost."})
    ref = fields.String(allow_none=True, metadata={"description": "git branch, tag or commit"})
    path = fields.String(allow_none=True, metadata={"description": "File path inside the tree"})


class ReferencePatchSchema(Schema):
    name = fields.String()
    url = fields.String()
    ref = fields.String(allow_none=True)
    path = fields.String(allow_none=True)


# --- Jobs --------------------------------------------------------------------------------------

class JobFiltersSchema(HostFilterArgs):
    class Meta:
        exclude = ("region_id",)


class JobSourceSchema(Schema):
    url = fields.String(metadata={"description": "git repository (git://, http(s):// at an "
                                                 "address the server may reach, or file:// "
                                                 "below the region's tenant's [sources] "
                                                 "file_roots): pinned to the commit its ref "
                                                 "names when submitted"})
    ref = fields.String(allow_none=True, metadata={"description": "branch, tag or commit"})
    path = fields.String(metadata={"description": "or an absolute directory below the region's "
                                                  "tenant's [sources] file_roots, snapshotted "
                                                  "when submitted"})


class JobCreateSchema(Schema):
    region_id = Id(required=True, strict=True)
    playbook = fields.String(required=True, validate=validate.Length(min=1, max=1024),
                             metadata={"description": "Path inside the source, or "
                                                      "craton:ping (built in, no source)."})
    source = fields.Nested(JobSourceSchema, load_default=dict)
    filters = fields.Nested(JobFiltersSchema, load_default=dict, metadata={
        "description": "Which hosts: the same filters as the hosts list."})
    layout = fields.Enum(
        JobLayout, by_value=True, load_default=JobLayout.HOSTS,
        metadata={"description": "hosts: one ansible-playbook run per wave of depends_on (a "
                                 "host starts once the groups it depends on are done, and is "
                                 "skipped if one of their hosts failed); ansible: one run "
                                 "over every host, depends_on not awaited"})
    forks = fields.Integer(strict=True, validate=validate.Range(min=1), metadata={
        "description": "Hosts at once (default [jobs] default_forks)."})
    check = fields.Boolean(load_default=False)
    diff = fields.Boolean(load_default=False)
    extra_vars = Variables(load_default=dict)
    secrets = fields.String(
        load_default="include", validate=validate.OneOf(["include", "omit"]), metadata={
            "description": "include (default): the bundle holds the hosts' secrets and "
                           "sensitive variables, which needs secrets:use — without it the "
                           "job is refused (403) naming the hosts that hold some; omit: the "
                           "job runs without them."})


class JobSourceShown(Schema):
    url = fields.String(attribute="source_url", allow_none=True)
    ref = fields.String(attribute="source_ref", allow_none=True)
    pin = fields.String(attribute="source_pin", allow_none=True, metadata={
        "description": "commit:<sha> of a git source, sha256:<digest> of a directory snapshot; "
                       "null for a built-in playbook."})


class JobSchema(Schema):
    """Dumps a ``craton.jobs.queries.JobView``: the job's row (``job.*``) and its counts."""

    id = fields.Integer(attribute="job.id")
    region_id = fields.Integer(attribute="job.region_id")
    status = fields.Enum(JobStatus, by_value=True, attribute="job.status")
    playbook = fields.String(attribute="job.playbook")
    source = fields.Nested(JobSourceShown, attribute="job")
    layout = fields.String(attribute="job.layout",
                           validate=validate.OneOf([layout.value for layout in JobLayout]))
    filters = JsonText(attribute="job.filters_json")
    forks = fields.Integer(attribute="job.forks")
    check = fields.Boolean(attribute="job.check_mode")
    diff = fields.Boolean(attribute="job.diff_mode")
    extra_vars = JsonText(attribute="job.extra_vars_json")
    bundle_etag = fields.String(allow_none=True, attribute="job.bundle_etag")
    engine = fields.String(attribute="job.engine")
    created_by = fields.String(attribute="job.created_by")
    secrets = fields.String(attribute="job.secrets", metadata={
        "description": "included or omitted: whether the job's bundle holds its hosts' "
                       "secrets and sensitive variables."})
    cancel_requested = fields.Boolean(attribute="job.cancel_requested")
    message = fields.String(allow_none=True, attribute="job.message")
    hosts = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "Hosts per state, and total."})
    progress = fields.Integer(metadata={"description": "Finished hosts, percent."})
    last_event = fields.Integer(metadata={
        "description": "Sequence number of the job's latest event: follow the events from "
                       "here to keep this snapshot current."})
    created_at = UTCDateTime(attribute="job.created_at")
    started_at = UTCDateTime(allow_none=True, attribute="job.started_at")
    finished_at = UTCDateTime(allow_none=True, attribute="job.finished_at")
    duration = fields.Float(allow_none=True, metadata={"description": "Seconds run so far."})
    version = fields.Integer(attribute="job.version")


class JobListArgs(PageArgs):
    region_id = Id()
    status = fields.List(fields.Enum(JobStatus, by_value=True))


class JobHostSchema(Schema):
    """Dumps a ``craton.jobs.queries.JobHostView``."""

    name = fields.String(attribute="row.host_name")
    host_id = fields.Integer(allow_none=True, attribute="row.host_id")
    status = fields.Enum(HostRunStatus, by_value=True, attribute="row.status")
    current_task = fields.String(allow_none=True, attribute="row.current_task")
    message = fields.String(allow_none=True, attribute="row.message")
    started_at = UTCDateTime(allow_none=True, attribute="row.started_at")
    finished_at = UTCDateTime(allow_none=True, attribute="row.finished_at")
    groups = fields.List(fields.String(), metadata={
        "description": "The groups the host is directly a member of now."})


class HostJobSchema(Schema):
    """Dumps a ``craton.jobs.queries.HostJob``."""

    job_id = fields.Integer(attribute="job.id")
    job_status = fields.Enum(JobStatus, by_value=True, attribute="job.status")
    playbook = fields.String(attribute="job.playbook")
    region_id = fields.Integer(attribute="job.region_id")
    created_at = UTCDateTime(attribute="job.created_at")
    status = fields.Enum(HostRunStatus, by_value=True, attribute="job_host.status", metadata={
        "description": "What became of the host in the job."})
    current_task = fields.String(allow_none=True, attribute="job_host.current_task")
    message = fields.String(allow_none=True, attribute="job_host.message")
    started_at = UTCDateTime(allow_none=True, attribute="job_host.started_at")
    finished_at = UTCDateTime(allow_none=True, attribute="job_host.finished_at")


class JobHostListArgs(Schema):
    status = fields.List(fields.Enum(HostRunStatus, by_value=True))
    limit = fields.Integer(validate=validate.Range(min=1))
    marker = fields.String(metadata={"description": "The last host name already seen."})


class JobEventSchema(Schema):
    seq = fields.Integer()
    kind = fields.String()
    host = fields.String(allow_none=True)
    created_at = fields.String()
    data = fields.Dict()


class JobEventArgs(Schema):
    after = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_ID),
                           metadata={"description": "The last sequence number already seen."})
    limit = fields.Integer(validate=validate.Range(min=1))


class HostLastJobSchema(Schema):
    """Dumps a ``craton.jobs.queries.HostJob``: the job, and what became of the host in it."""

    id = fields.Integer(attribute="job.id")
    status = fields.Enum(JobStatus, by_value=True, attribute="job.status")
    playbook = fields.String(attribute="job.playbook")
    result = fields.Enum(HostRunStatus, by_value=True, attribute="job_host.status")
    task = fields.String(allow_none=True, attribute="job_host.current_task")
    message = fields.String(allow_none=True, attribute="job_host.message")
    started_at = UTCDateTime(allow_none=True, attribute="job_host.started_at")
    finished_at = UTCDateTime(allow_none=True, attribute="job_host.finished_at")


class HostStatusSchema(Schema):
    """Dumps a ``craton.jobs.queries.HostStatus``."""

    host_id = fields.Integer(attribute="host.id")
    name = fields.String(attribute="host.name")
    reachable = fields.Boolean(allow_none=True, attribute="host.reachable")
    last_seen_at = UTCDateTime(allow_none=True, attribute="host.last_seen_at")
    job = fields.Nested(HostLastJobSchema, allow_none=True, attribute="last", metadata={
        "description": "Its last job, and the task the host is in or stopped at."})


# --- Variables ---------------------------------------------------------------------------------

class VariablesSchema(Schema):
    variables = Variables(required=True, metadata={
        "description": "A sensitive variable's value (one named like a password, token or "
                       "secret, or marked sensitive) shows as \"<hidden>\" unless the caller "
                       "may reveal secrets (secrets:reveal)."})
    sensitive = fields.List(
        fields.String(), load_only=True, load_default=list, metadata={
            "description": "Keys of this request to store as sensitive (encrypted, shown as "
                           "\"<hidden>\" to who may not reveal secrets) although their names "
                           "do not say so. A key written again without it is plain again "
                           "(unless its name makes it sensitive)."})
    provenance = fields.Dict(keys=fields.String(), values=fields.Dict(), dump_only=True,
                             metadata={"description": "With resolved=true: for each key, the "
                                       "region, group, reference, host or secret that set it."})


# --- Lists and errors --------------------------------------------------------------------------

# --- API keys ----------------------------------------------------------------------------------

class ApiKeySchema(Schema):
    """An API key as listed: never its secret (which Craton does not keep)."""

    id = fields.Integer(dump_only=True)
    prefix = fields.Function(lambda key: f"craton_{key.key_id}", dump_only=True, metadata={
        "description": "The key's public start (craton_<key id>), to tell keys apart."})
    tenant_id = fields.Integer(dump_only=True, allow_none=True, metadata={
        "description": "null: a cloud-admin key (made with craton-manage only)."})
    name = fields.String(required=True, validate=validate.Length(min=1, max=255))
    role = fields.Enum(ApiKeyRole, by_value=True, required=True, metadata={
        "description": "What the key may do in its tenant: reader (read inventory), member "
                       "(also write it and run jobs), admin (also reveal secrets and manage "
                       "the tenant's API keys)."})
    expires_at = fields.AwareDateTime(default_timezone=dt.UTC, allow_none=True, metadata={
        "description": "When the key stops working (ISO 8601); null: never."})
    created_at = UTCDateTime(dump_only=True)
    created_by = fields.String(dump_only=True)
    last_used_at = UTCDateTime(dump_only=True, allow_none=True, metadata={
        "description": "Updated at most once a minute."})
    revoked_at = UTCDateTime(dump_only=True, allow_none=True)

    @ma.post_dump(pass_original=True)
    def _expiry_in_utc(self, data: dict[str, Any], key: Any, **kwargs: Any) -> dict[str, Any]:
        data["expires_at"] = iso_utc(getattr(key, "expires_at", None))
        return data


class ApiKeyCreatedSchema(ApiKeySchema):
    key = fields.String(dump_only=True, metadata={
        "description": "The whole key (craton_<key id>_<secret>). Shown in this answer only: "
                       "Craton keeps a keyed hash of it, never the key."})


# --- Change records ----------------------------------------------------------------------------

OBJECT_TYPES = ("tenant", "region", "host", "group", "secret", "reference", "api_key", "job")


class ValueChangeSchema(Schema):
    before = fields.Raw(allow_none=True, metadata={
        "description": "Left out when the field or key did not exist before."})
    after = fields.Raw(allow_none=True, metadata={
        "description": "Left out when the field or key no longer exists."})


class LinkChangeSchema(Schema):
    added = fields.List(fields.String(), metadata={"description": "Names of what was linked."})
    removed = fields.List(fields.String(), metadata={
        "description": "Names of what was unlinked."})


class ActorSchema(Schema):
    user = fields.String()
    tenant_id = fields.Integer(allow_none=True, metadata={
        "description": "The caller's own tenant; null for a cloud admin."})
    auth_strategy = fields.String(metadata={
        "description": "How the caller was authenticated: noauth, apikey, keystone, job (a "
                       "job's write-back), internal (craton-manage and Craton itself)."})
    api_key_name = fields.String(allow_none=True)
    job_id = fields.Integer(allow_none=True, metadata={
        "description": "The job whose playbook made the change (its craton_audit facts)."})


def ValueChanges(description: str, **kwargs: Any) -> fields.Dict:
    return fields.Dict(keys=fields.String(), values=fields.Nested(ValueChangeSchema),
                       metadata={"description": description}, **kwargs)


class ChangeSchema(Schema):
    """One object's change in one transaction: what the write did to it, by whom."""

    id = fields.Integer()
    created_at = UTCDateTime()
    request_id = fields.String(allow_none=True)
    action = fields.Enum(ChangeAction, by_value=True)
    object_type = fields.String(validate=validate.OneOf(OBJECT_TYPES))
    object_id = fields.Integer()
    object_name = fields.String(allow_none=True)
    tenant_id = fields.Integer(allow_none=True, metadata={
        "description": "The tenant the object belongs to."})
    region_id = fields.Integer(allow_none=True)
    actor = fields.Nested(ActorSchema)
    reason = fields.String(allow_none=True, metadata={
        "description": "The X-Craton-Reason header of the request, if it sent one."})
    fields_ = ValueChanges("Each changed field's before and after (a secret's content only "
                           "as \"<hidden>\").", data_key="fields")
    variables = ValueChanges(
        "Each variable key set, changed or deleted, with its before and after; values of "
        "sensitive-looking keys (*_password, *_token, …) as \"<hidden>\".")
    links = fields.Dict(keys=fields.String(), values=fields.Nested(LinkChangeSchema), metadata={
        "description": "Memberships and edges added and removed: groups (of a host), hosts, "
                       "children, parents, depends_on (of a group)."})

    @ma.pre_dump
    def _unpack(self, change: Any, **kwargs: Any) -> dict[str, Any]:
        diff = change.diff
        return {
            **{name: getattr(change, name) for name in (
                "id", "created_at", "request_id", "action", "object_type", "object_id",
                "object_name", "tenant_id", "region_id", "reason")},
            "actor": {"user": change.actor_user, "tenant_id": change.actor_tenant_id,
                      "auth_strategy": change.auth_strategy,
                      "api_key_name": change.api_key_name, "job_id": change.job_id},
            "fields_": diff.get("fields", {}), "variables": diff.get("variables", {}),
            "links": diff.get("links", {}),
        }


class ObjectChangeListArgs(PageArgs):
    since = fields.AwareDateTime(default_timezone=dt.UTC, metadata={
        "description": "Only changes at or after this time (ISO 8601; UTC if no zone)."})
    until = fields.AwareDateTime(default_timezone=dt.UTC, metadata={
        "description": "Only changes before this time."})
    user = fields.String(validate=validate.Length(min=1, max=255), metadata={
        "description": "Only changes by this user (exactly as recorded)."})
    request_id = fields.String(validate=validate.Length(min=1, max=128), metadata={
        "description": "Only changes made by this request (its X-Request-Id)."})


class ChangeListArgs(ObjectChangeListArgs):
    object_type = fields.String(validate=validate.OneOf(OBJECT_TYPES))
    object_id = Id(metadata={"description": "Only changes of this object (with object_type)."})
    tenant_id = Id()
    job_id = Id(metadata={"description": "Only changes a job's playbook made."})
    action = fields.Enum(ChangeAction, by_value=True)


def list_of(schema: type[ma.Schema], name: str) -> type[ma.Schema]:
    return Schema.from_dict({
        "items": fields.List(fields.Nested(schema)),
        "next": fields.String(allow_none=True, metadata={
            "description": "URL of the next page; null on the last page."}),
    }, name=name)


class PlainDumper:
    """What ``schema.dump(obj)`` answers, for a list of thousands of objects: one plain
    conversion per field, chosen once, instead of marshmallow's walk through every field of
    every object (and every key of every variables dict) — at 1,000 hosts a page, most of
    the page's time.

    It knows only the field types whose dump is a plain conversion, and the one hook of
    ``Stamped`` (bookkeeping last); a schema with anything else is refused when the dumper is
    made, so a field added to the schema cannot be dumped differently by the two
    (tests/functional/test_hosts.py compares them)."""

    def __init__(self, schema: ma.Schema) -> None:
        hooks = {name for tagged in schema._hooks.values() for name, *_ in tagged}
        if hooks - {"_bookkeeping_last"}:
            raise TypeError(f"{type(schema).__name__} has hooks a PlainDumper cannot run: "
                            f"{sorted(hooks)}")
        names = list(schema.dump_fields)
        if isinstance(schema, Stamped):
            names = ([n for n in names if n not in Stamped.LAST]
                     + [n for n in Stamped.LAST if n in names])
        self._fields = tuple(
            (field.data_key or name, _plain_attribute(field, name), _plain_conversion(field))
            for name in names for field in (schema.dump_fields[name],))

    def dump(self, obj: Any) -> dict[str, Any]:
        shown: dict[str, Any] = {}
        for key, attribute, convert in self._fields:
            value = getattr(obj, attribute)
            shown[key] = None if value is None else convert(value)
        return shown


def _identity(value: Any) -> Any:
    return value


def _plain_attribute(field: fields.Field, name: str) -> str:
    """The attribute ``field`` reads: one ``getattr``, not marshmallow's dotted path."""
    attribute = field.attribute or name
    if "." in attribute:
        raise TypeError(f"a PlainDumper cannot read the dotted attribute {attribute!r}")
    return attribute


def _plain_conversion(field: fields.Field) -> Callable[[Any], Any]:
    """How ``field`` dumps a value that is not None, as a plain function."""
    kind = type(field)
    if kind is fields.Integer and not field.as_string:
        return int
    if kind is fields.String:
        return str
    if kind is fields.Boolean:
        return bool
    if kind is fields.Raw:
        return _identity
    if kind is UTCDateTime:
        return lambda value: iso_utc(value.replace(tzinfo=None))
    if kind is fields.Enum and field.by_value and type(field.field) is fields.Raw:
        return lambda value: value.value
    if kind is fields.List:
        inner = _plain_conversion(field.inner)
        return lambda value: [None if item is None else inner(item) for item in value]
    if kind is fields.Dict and field.key_field is not None and field.value_field is not None:
        convert_key = _plain_conversion(field.key_field)
        convert_value = _plain_conversion(field.value_field)
        if convert_key is str and convert_value is _identity:
            return lambda value: {str(k): v for k, v in value.items()}
        return lambda value: {convert_key(k): None if v is None else convert_value(v)
                              for k, v in value.items()}
    raise TypeError(f"a PlainDumper cannot dump {kind.__name__} field {field.name!r}")


TenantList = list_of(TenantSchema, "TenantList")
RegionList = list_of(RegionSchema, "RegionList")
HostList = list_of(HostSchema, "HostList")
GroupList = list_of(GroupSchema, "GroupList")
SecretList = list_of(SecretSchema, "SecretList")
ReferenceList = list_of(ReferenceSchema, "ReferenceList")
JobList = list_of(JobSchema, "JobList")
JobHostList = list_of(JobHostSchema, "JobHostList")
HostJobList = list_of(HostJobSchema, "HostJobList")
JobEventList = list_of(JobEventSchema, "JobEventList")
ApiKeyList = list_of(ApiKeySchema, "ApiKeyList")
ChangeList = list_of(ChangeSchema, "ChangeList")


class ErrorBodySchema(Schema):
    code = fields.Integer()
    message = fields.String()
    fields_ = fields.Dict(keys=fields.String(), values=fields.String(), data_key="fields",
                          metadata={"description": "Field path → why it was refused."})
    request_id = fields.String()


class CallerTenantSchema(Schema):
    id = fields.Integer()
    name = fields.String(allow_none=True, metadata={
        "description": "null when no tenant has this id (noauth's X-Craton-Tenant may name "
                       "any)."})


class WhoAmISchema(Schema):
    """The caller, as Craton sees it: what a client shows as "signed in as" and uses to offer
    only the actions the caller may take."""

    user = fields.String()
    tenant = fields.Nested(CallerTenantSchema, allow_none=True, metadata={
        "description": "The tenant the caller acts in; null for a cloud admin (every "
                       "tenant)."})
    cloud_admin = fields.Boolean()
    roles = fields.List(fields.String(), metadata={
        "description": "The caller's Craton roles in its tenant (reader, member, admin, …)."})
    auth_strategy = fields.String(metadata={
        "description": "How the caller was authenticated: noauth, apikey or keystone."})
    api_key_name = fields.String(allow_none=True, metadata={
        "description": "The name of the API key the caller presented, if it presented one."})
    permissions = fields.List(fields.String(), metadata={
        "description": "The permissions (policy rules: inventory:read, jobs:cancel, …) the "
                       "policy in force grants the caller, sorted."})


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema)


def error_response(description: str, **headers: str) -> dict[str, Any]:
    """An OpenAPI response in the error shape (for statuses an operation answers besides the
    usual ones), with the headers it carries described."""
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if headers:
        response["headers"] = {name: {"description": text, "schema": {"type": "integer"}}
                               for name, text in headers.items()}
    return response


def quota_response(quota: str) -> dict[str, Any]:
    return error_response(f"The tenant's {quota} quota is used up (fields names it).")
