"""/v1/groups, /v1/regions/{id}/groups, and a group's members and subgroups"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from sqlalchemy import select

from craton.api.common import (
    Blueprint,
    check_if_match,
    context,
    db_session,
    not_modified,
    paginate,
    services,
    with_etag,
)
from craton.api.v1 import schemas
from craton.api.v1.hosts import host_page
from craton.api.v1.variables import register_variables
from craton.db.models import Group, GroupChild, Host, HostGroup, Region
from craton.db.scope import get_scoped, scoped_select
from craton.errors import NotFound
from craton.inventory import groups
from craton.inventory.select import subtree
from craton.names import check, group_name_problem

blp = Blueprint("groups", __name__, url_prefix="/v1",
                description="Groups of a region: a DAG of subgroups, host members, variables "
                            "and run dependencies (depends_on).")


def _group(group_id: int) -> Group:
    return get_scoped(db_session(), context(), Group, group_id, groups.GROUP_LOADERS)


def _list(args: dict[str, Any], region_id: int | None) -> Any:
    stmt = scoped_select(context(), Group).options(*groups.GROUP_LOADERS)
    if region_id is not None:
        stmt = stmt.where(Group.region_id == region_id)
    if args.get("name") is not None:
        check("name", group_name_problem(args["name"]))
        stmt = stmt.where(Group.name == args["name"])
    return paginate(stmt, Group.id, args)


@blp.route("/groups")
class Groups(MethodView):
    @blp.arguments(schemas.GroupListArgs, location="query")
    @blp.response(200, schemas.GroupList)
    def get(self, args: dict[str, Any]) -> Any:
        """List groups across regions"""
        return _list(args, args.get("region_id"))


@blp.route("/regions/<int:region_id>/groups")
class RegionGroups(MethodView):
    @blp.arguments(schemas.GroupListArgs, location="query")
    @blp.response(200, schemas.GroupList)
    def get(self, args: dict[str, Any], region_id: int) -> Any:
        """List a region's groups"""
        region = get_scoped(db_session(), context(), Region, region_id)
        return _list(args, region.id)

    @blp.arguments(schemas.GroupCreateSchema)
    @blp.response(201, schemas.GroupSchema)
    @blp.doc(responses={"429": schemas.quota_response("groups")})
    def post(self, data: dict[str, Any], region_id: int) -> Any:
        """Create a group, with its subgroups, parents, dependencies and hosts named inline"""
        region = get_scoped(db_session(), context(), Region, region_id)
        group = groups.create_group(db_session(), context(), region, data,
                                    limits=services().settings.limits, sealer=services().secrets,
                                    quotas=services().settings.quotas)
        return with_etag(group, 201, Location=f"/v1/groups/{group.id}")


@blp.route("/groups/<int:group_id>")
class GroupItem(MethodView):
    @blp.response(200, schemas.GroupSchema)
    def get(self, group_id: int) -> Any:
        """Show a group"""
        group = _group(group_id)
        return not_modified(group) or with_etag(group)

    @blp.arguments(schemas.GroupPatchSchema)
    @blp.response(200, schemas.GroupSchema)
    def patch(self, data: dict[str, Any], group_id: int) -> Any:
        """Rename, merge variables, or replace subgroups or dependencies"""
        group = _group(group_id)
        check_if_match(group)
        return with_etag(groups.update_group(db_session(), context(), group, data,
                                             limits=services().settings.limits,
                                             sealer=services().secrets))

    @blp.response(204)
    def delete(self, group_id: int) -> None:
        """Delete a group (its hosts and subgroups stay)"""
        group = _group(group_id)
        check_if_match(group)
        groups.delete_group(db_session(), context(), group)


@blp.route("/groups/<int:group_id>/hosts")
class GroupHosts(MethodView):
    @blp.arguments(schemas.MemberListArgs, location="query")
    @blp.response(200, schemas.HostList)
    def get(self, args: dict[str, Any], group_id: int) -> Any:
        """List a group's hosts (with descendants=true, also those of its subgroups)"""
        group = _group(group_id)
        if args["descendants"]:
            group_ids = subtree(select(Group.id.label("id")).where(Group.id == group.id))
            members = select(HostGroup.host_id).where(HostGroup.group_id.in_(group_ids))
        else:
            members = select(HostGroup.host_id).where(HostGroup.group_id == group.id)
        return host_page(scoped_select(context(), Host).where(Host.id.in_(members)), args)

    @blp.arguments(schemas.MembersSchema)
    @blp.response(200, schemas.ChangedSchema)
    def post(self, data: dict[str, Any], group_id: int) -> Any:
        """Add hosts (ids or names) to a group"""
        group = _group(group_id)
        host_ids = groups.resolve_hosts(db_session(), group.region_id, data["hosts"], "hosts")
        return {"changed": groups.add_hosts(db_session(), context(), group, host_ids)}

    @blp.arguments(schemas.MembersSchema)
    @blp.response(200, schemas.ChangedSchema)
    def delete(self, data: dict[str, Any], group_id: int) -> Any:
        """Remove hosts (ids or names) from a group"""
        group = _group(group_id)
        host_ids = groups.resolve_hosts(db_session(), group.region_id, data["hosts"], "hosts")
        return {"changed": groups.remove_hosts(db_session(), context(), group, host_ids)}


@blp.route("/groups/<int:group_id>/hosts/<int:host_id>")
class GroupHost(MethodView):
    @blp.response(204)
    def delete(self, group_id: int, host_id: int) -> None:
        """Remove one host from a group"""
        group = _group(group_id)
        if not groups.remove_hosts(db_session(), context(), group, [host_id]):
            raise NotFound(f"host {host_id} is not a member of group {group_id}")


@blp.route("/groups/<int:group_id>/children")
class GroupChildren(MethodView):
    @blp.arguments(schemas.PageArgs, location="query")
    @blp.response(200, schemas.GroupList)
    def get(self, args: dict[str, Any], group_id: int) -> Any:
        """List a group's direct subgroups"""
        group = _group(group_id)
        children = select(GroupChild.child_id).where(GroupChild.parent_id == group.id)
        stmt = scoped_select(context(), Group).where(Group.id.in_(children)).options(
            *groups.GROUP_LOADERS)
        return paginate(stmt, Group.id, args)

    @blp.arguments(schemas.ChildrenSchema)
    @blp.response(200, schemas.ChangedSchema)
    def post(self, data: dict[str, Any], group_id: int) -> Any:
        """Add subgroups (ids or names); 409 if that would close a cycle"""
        group = _group(group_id)
        return {"changed": groups.add_children(db_session(), context(), group,
                                               data["children"])}

    @blp.arguments(schemas.ChildrenSchema)
    @blp.response(200, schemas.ChangedSchema)
    def delete(self, data: dict[str, Any], group_id: int) -> Any:
        """Detach subgroups (ids or names); they are not deleted"""
        group = _group(group_id)
        return {"changed": groups.remove_children(db_session(), context(), group,
                                                  data["children"])}


@blp.route("/groups/<int:group_id>/children/<int:child_id>")
class GroupChildItem(MethodView):
    @blp.response(204)
    def delete(self, group_id: int, child_id: int) -> None:
        """Detach one subgroup"""
        group = _group(group_id)
        if child_id not in {child.id for child in group.children}:
            raise NotFound(f"group {child_id} is not a subgroup of group {group_id}")
        groups.remove_children(db_session(), context(), group, [child_id])


register_variables(blp, Group, "groups", "group_id")
