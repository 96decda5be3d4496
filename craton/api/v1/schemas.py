"""Request and response shapes of /v1, which also make the OpenAPI document.

Schemas check types and shapes; the domain modules check meaning (names, addresses, cycles), so
every client of the domain — the API, the demo loader, jobs — gets the same rules.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from craton.db.models import MAX_ID, HostState, SecretKind


class Schema(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class UTCDateTime(fields.DateTime):
    """Stored naive UTC; shown as ISO 8601 with a Z."""

    def _serialize(self, value: dt.datetime | None, attr: str | None, obj: Any,
                   **kwargs: Any) -> str | None:
        if value is None:
            return None
        return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


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

class TenantSchema(Stamped):
    name = fields.String(required=True)
    description = Description()


class TenantPatchSchema(Schema):
    name = fields.String()
    description = Description()


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
        "description": "git://, http(s):// or file:/// URL of a YAML file or repository."})
    ref = fields.String(allow_none=True, metadata={"description": "git branch, tag or commit"})
    path = fields.String(allow_none=True, metadata={"description": "File path inside the tree"})


class ReferencePatchSchema(Schema):
    name = fields.String()
    url = fields.String()
    ref = fields.String(allow_none=True)
    path = fields.String(allow_none=True)


# --- Variables ---------------------------------------------------------------------------------

class VariablesSchema(Schema):
    variables = Variables(required=True)
    provenance = fields.Dict(keys=fields.String(), values=fields.Dict(), dump_only=True,
                             metadata={"description": "With resolved=true: for each key, the "
                                       "region, group, reference, host or secret that set it."})


# --- Lists and errors --------------------------------------------------------------------------

def list_of(schema: type[ma.Schema], name: str) -> type[ma.Schema]:
    return Schema.from_dict({
        "items": fields.List(fields.Nested(schema)),
        "next": fields.String(allow_none=True, metadata={
            "description": "URL of the next page; null on the last page."}),
    }, name=name)


TenantList = list_of(TenantSchema, "TenantList")
RegionList = list_of(RegionSchema, "RegionList")
HostList = list_of(HostSchema, "HostList")
GroupList = list_of(GroupSchema, "GroupList")
SecretList = list_of(SecretSchema, "SecretList")
ReferenceList = list_of(ReferenceSchema, "ReferenceList")


class ErrorBodySchema(Schema):
    code = fields.Integer()
    message = fields.String()
    fields_ = fields.Dict(keys=fields.String(), values=fields.String(), data_key="fields",
                          metadata={"description": "Field path → why it was refused."})
    request_id = fields.String()


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema)
