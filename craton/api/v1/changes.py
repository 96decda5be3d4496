"""/v1/changes and /v1/{hosts,groups,regions}/{id}/changes: the record of every write, newest
first (``craton.db.changes`` writes them)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask.views import MethodView
from sqlalchemy import Select

from craton.api.common import Blueprint, context, db_session, paginate
from craton.api.v1 import schemas
from craton.context import Action
from craton.db.models import Change, Group, Host, Region
from craton.db.scope import get_scoped, noun, scoped_select

blp = Blueprint("changes", __name__, url_prefix="/v1",
                description="Change records: who changed what, when, in which request and "
                            "why, with the before and after of every field, variable and "
                            "link. A caller sees its own tenant's; a cloud admin all.")

FILTERS = {"object_type": Change.object_type, "object_id": Change.object_id,
           "user": Change.actor_user, "request_id": Change.request_id,
           "tenant_id": Change.tenant_id, "job_id": Change.job_id, "action": Change.action}


def _naive_utc(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def list_changes(args: dict[str, Any], stmt: Select[tuple[Change]] | None = None) -> Any:
    """A page of the change records ``args`` select, newest first. API keys' records only
    for callers who may manage API keys (the others cannot see the keys either)."""
    ctx = context()
    stmt = scoped_select(ctx, Change) if stmt is None else stmt
    if not ctx.can(Action.MANAGE_API_KEYS):
        stmt = stmt.where(Change.object_type != "api_key")
    for name, column in FILTERS.items():
        if args.get(name) is not None:
            stmt = stmt.where(column == args[name])
    if args.get("since") is not None:
        stmt = stmt.where(Change.created_at >= _naive_utc(args["since"]))
    if args.get("until") is not None:
        stmt = stmt.where(Change.created_at < _naive_utc(args["until"]))
    return paginate(stmt, Change.id, args, newest_first=True)


@blp.route("/changes")
class Changes(MethodView):
    @blp.arguments(schemas.ChangeListArgs, location="query")
    @blp.response(200, schemas.ChangeList)
    def get(self, args: dict[str, Any]) -> Any:
        """List change records, newest first (filter by object, user, time, request, job)"""
        return list_changes(args)


def register_object_changes(model: type, collection: str, id_arg: str) -> None:
    """``GET /v1/<collection>/<id>/changes``: one object's records (while it exists; after,
    ``/v1/changes?object_type=…&object_id=…`` still finds them)."""
    what = noun(model)

    class ObjectChanges(MethodView):
        @blp.arguments(schemas.ObjectChangeListArgs, location="query")
        @blp.response(200, schemas.ChangeList)
        def get(self, args: dict[str, Any], **ids: int) -> Any:
            found = get_scoped(db_session(), context(), model, ids[id_arg])
            stmt = scoped_select(context(), Change).where(Change.object_type == what,
                                                          Change.object_id == found.id)
            return list_changes(args, stmt)

    ObjectChanges.get.__doc__ = f"A {what}'s change records, newest first"
    blp.route(f"/{collection}/<int:{id_arg}>/changes", endpoint=f"{what}_changes")(
        ObjectChanges)


register_object_changes(Host, "hosts", "host_id")
register_object_changes(Group, "groups", "group_id")
register_object_changes(Region, "regions", "region_id")
