"""/v1/hosts and /v1/regions/{id}/hosts"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from flask.views import MethodView
from sqlalchemy import Select

from craton.api.common import (
    Blueprint,
    check_if_match,
    context,
    db_session,
    json_body,
    load,
    not_modified,
    paginate,
    services,
    with_etag,
)
from craton.api.v1 import schemas
from craton.api.v1.variables import register_variables
from craton.db.models import Host, Region
from craton.db.scope import get_scoped
from craton.errors import TooLarge, invalid
from craton.inventory import hosts
from craton.inventory.select import build_filter, check_group_exists, select_hosts

blp = Blueprint("hosts", __name__, url_prefix="/v1",
                description="Hosts of a region, their variables and group memberships.")

CREATE_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"oneOf": [
        {"$ref": "#/components/schemas/HostCreate"},
        {"type": "array", "items": {"$ref": "#/components/schemas/HostCreate"}},
    ]}}},
    "description": "One host, or a list of hosts created together: all of them or none.",
}


HOST_DUMPER = schemas.PlainDumper(schemas.HostSchema())


def host_page(stmt: Select[tuple[Host]], args: dict[str, Any]) -> Response:
    """The page of the hosts ``stmt`` selects that ``args`` asks for, read in a constant
    number of statements (``hosts.listed_hosts``) and dumped as ``HostList`` would dump it,
    without its per-field walk (``PlainDumper``)."""
    found = paginate(stmt, Host.id, args,
                     load=lambda page: hosts.listed_hosts(db_session(), page))
    return jsonify({"items": [HOST_DUMPER.dump(host) for host in found.items],
                    "next": found.next})


def list_hosts(args: dict[str, Any], region_id: int | None = None) -> Response:
    flt = build_filter(args, region_id)
    check_group_exists(db_session(), context(), flt)
    return host_page(select_hosts(context(), flt), args)


@blp.route("/hosts")
class Hosts(MethodView):
    @blp.arguments(schemas.HostListArgs, location="query")
    @blp.response(200, schemas.HostList)
    def get(self, args: dict[str, Any]) -> Any:
        """List and filter hosts across regions"""
        return list_hosts(args)


@blp.route("/regions/<int:region_id>/hosts")
class RegionHosts(MethodView):
    @blp.arguments(schemas.RegionHostListArgs, location="query")
    @blp.response(200, schemas.HostList)
    def get(self, args: dict[str, Any], region_id: int) -> Any:
        """List and filter a region's hosts"""
        region = get_scoped(db_session(), context(), Region, region_id)
        return list_hosts(args, region.id)

    @blp.doc(requestBody=CREATE_BODY, responses={
        "201": {
            "description": "The host (for one) or {items: [...]} (for a list)",
            "content": {"application/json": {"schema": {"oneOf": [
                {"$ref": "#/components/schemas/Host"},
                {"$ref": "#/components/schemas/HostList"},
            ]}}},
        },
        "413": schemas.error_response("More hosts than [limits] max_bulk_hosts in one list "
                                      "(or a body over [api] max_body_size)."),
        "429": schemas.quota_response("hosts"),
    })
    def post(self, region_id: int) -> Any:
        """Create one host, or many in one transaction"""
        region = get_scoped(db_session(), context(), Region, region_id)
        settings = services().settings
        body = json_body()
        if isinstance(body, list):
            if not body:
                raise invalid({"body": "must hold at least one host"})
            if len(body) > settings.limits.max_bulk_hosts:
                reason = (f"holds {len(body):,} hosts; at most {settings.limits.max_bulk_hosts:,}"
                          " may be created in one request ([limits] max_bulk_hosts)")
                raise TooLarge(f"request body {reason}", fields={"body": reason})
            items = load(schemas.HostCreateSchema(many=True), body)
            created = hosts.create_hosts(db_session(), context(), region, items, numbered=True,
                                         limits=settings.limits, quotas=settings.quotas,
                                         sealer=services().secrets)
            return schemas.HostList().dump({"items": created, "next": None}), 201
        item = load(schemas.HostCreateSchema(), body)
        (host,) = hosts.create_hosts(db_session(), context(), region, [item], numbered=False,
                                     limits=settings.limits, quotas=settings.quotas,
                                         sealer=services().secrets)
        return schemas.HostSchema().dump(host), 201, {
            "ETag": f'"{host.version}"', "Location": f"/v1/hosts/{host.id}"}


@blp.route("/hosts/<int:host_id>")
class HostItem(MethodView):
    @blp.response(200, schemas.HostSchema)
    def get(self, host_id: int) -> Any:
        """Show a host"""
        host = get_scoped(db_session(), context(), Host, host_id, hosts.HOST_LOADERS)
        return not_modified(host) or with_etag(host)

    @blp.arguments(schemas.HostPatchSchema)
    @blp.response(200, schemas.HostSchema)
    def patch(self, data: dict[str, Any], host_id: int) -> Any:
        """Change a host's fields, merge variables, or replace its groups"""
        host = get_scoped(db_session(), context(), Host, host_id, hosts.HOST_LOADERS)
        check_if_match(host)
        return with_etag(hosts.update_host(db_session(), context(), host, data,
                                            limits=services().settings.limits,
                                             sealer=services().secrets))

    @blp.response(204)
    def delete(self, host_id: int) -> None:
        """Delete a host with its variables and secrets"""
        host = get_scoped(db_session(), context(), Host, host_id, hosts.HOST_LOADERS)
        check_if_match(host)
        hosts.delete_host(db_session(), context(), host)


register_variables(blp, Host, "hosts", "host_id")
