"""``/v1/{regions,groups,hosts}/{id}/variables``: one implementation for the three owners.

GET shows them (for a host, ``?resolved=true`` shows what Ansible will see, with provenance);
PUT replaces them all; PATCH merges (a null value deletes the key); DELETE
``…/variables/{key}`` removes one. They share the owner's ETag, so If-Match works the same here
as on the owner itself.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from sqlalchemy.orm import selectinload

from craton.api.common import Blueprint, check_if_match, context, db_session, not_modified, services
from craton.api.v1 import schemas
from craton.context import Action
from craton.db.models import Host
from craton.db.scope import get_scoped, noun
from craton.errors import invalid
from craton.inventory.snapshot import resolve_host_variables
from craton.inventory.variables import (
    Sealer,
    delete_variable,
    merge_variables,
    replace_variables,
    shown_variables,
)


def revealing() -> Sealer | None:
    """The secrets backend when the caller may see sensitive values, else None."""
    return services().secrets if context().can(Action.REVEAL_SECRETS) else None


def register_variables(blp: Blueprint, model: type, collection: str, id_arg: str) -> None:
    """Add the variables routes of ``model`` (served under /v1/<collection>/<id>) to ``blp``."""
    what = noun(model)
    loaders = (selectinload(model.variable_rows),)

    def owner(owner_id: int) -> Any:
        return get_scoped(db_session(), context(), model, owner_id, loaders)

    def shown(obj: Any) -> tuple[dict[str, Any], int, dict[str, str]]:
        db_session().flush()
        return ({"variables": shown_variables(obj, revealing())}, 200,
                {"ETag": f'"{obj.version}"', "Vary": "Authorization, X-Craton-Roles"})

    class Variables(MethodView):
        @blp.arguments(schemas.ResolvedArgs, location="query")
        @blp.response(200, schemas.VariablesSchema)
        def get(self, args: dict[str, Any], **ids: int) -> Any:
            obj = owner(ids[id_arg])
            if args["resolved"]:
                if model is not Host:
                    raise invalid({"resolved": "only hosts have resolved variables"})
                result = resolve_host_variables(db_session(), context(), obj,
                                                services().fetcher,
                                                full=args["provenance"] == "full",
                                                sealer=revealing())
                return {"variables": result.variables, "provenance": result.provenance}
            return not_modified(obj) or shown(obj)

        @blp.arguments(schemas.VariablesSchema)
        @blp.response(200, schemas.VariablesSchema)
        def put(self, data: dict[str, Any], **ids: int) -> Any:
            context().require(Action.WRITE)
            obj = owner(ids[id_arg])
            check_if_match(obj)
            replace_variables(obj, data["variables"], services().settings.limits,
                              services().secrets, data["sensitive"])
            return shown(obj)

        @blp.arguments(schemas.VariablesSchema)
        @blp.response(200, schemas.VariablesSchema)
        def patch(self, data: dict[str, Any], **ids: int) -> Any:
            context().require(Action.WRITE)
            obj = owner(ids[id_arg])
            check_if_match(obj)
            merge_variables(obj, data["variables"], services().settings.limits,
                            services().secrets, data["sensitive"])
            return shown(obj)

    Variables.get.__doc__ = f"Show a {what}'s variables"
    Variables.put.__doc__ = f"Replace a {what}'s variables"
    Variables.patch.__doc__ = f"Merge into a {what}'s variables (null deletes a key)"
    blp.route(f"/{collection}/<int:{id_arg}>/variables", endpoint=f"{what}_variables")(Variables)

    class Variable(MethodView):
        @blp.response(204)
        def delete(self, key: str, **ids: int) -> None:
            context().require(Action.WRITE)
            obj = owner(ids[id_arg])
            check_if_match(obj)
            delete_variable(obj, key)
            db_session().flush()

    Variable.delete.__doc__ = f"Delete one of a {what}'s variables"
    blp.route(f"/{collection}/<int:{id_arg}>/variables/<key>", endpoint=f"{what}_variable")(
        Variable)
