"""/v1/groups/{id}/references and /v1/references/{id}"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

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
from craton.db.models import Group, Reference
from craton.db.scope import get_scoped, scoped_select
from craton.inventory import references

blp = Blueprint("references", __name__, url_prefix="/v1",
                description="References: group-variable YAML files kept in git, on a web "
                            "server or in a local directory.")


@blp.route("/groups/<int:group_id>/references")
class GroupReferences(MethodView):
    @blp.arguments(schemas.PageArgs, location="query")
    @blp.response(200, schemas.ReferenceList)
    def get(self, args: dict[str, Any], group_id: int) -> Any:
        """List a group's references"""
        group = get_scoped(db_session(), context(), Group, group_id)
        stmt = scoped_select(context(), Reference).where(Reference.group_id == group.id)
        return paginate(stmt, Reference.id, args)

    @blp.arguments(schemas.ReferenceSchema)
    @blp.response(201, schemas.ReferenceSchema)
    def post(self, data: dict[str, Any], group_id: int) -> Any:
        """Add a reference to a group"""
        group = get_scoped(db_session(), context(), Group, group_id)
        reference = references.create_reference(db_session(), context(), group, data,
                                                fetcher=services().fetcher)
        return with_etag(reference, 201, Location=f"/v1/references/{reference.id}")


@blp.route("/references/<int:reference_id>")
class ReferenceItem(MethodView):
    @blp.response(200, schemas.ReferenceSchema)
    def get(self, reference_id: int) -> Any:
        """Show a reference"""
        reference = get_scoped(db_session(), context(), Reference, reference_id)
        return not_modified(reference) or with_etag(reference)

    @blp.arguments(schemas.ReferencePatchSchema)
    @blp.response(200, schemas.ReferenceSchema)
    def patch(self, data: dict[str, Any], reference_id: int) -> Any:
        """Change a reference"""
        reference = get_scoped(db_session(), context(), Reference, reference_id)
        check_if_match(reference)
        return with_etag(references.update_reference(db_session(), context(), reference, data,
                                                     fetcher=services().fetcher))

    @blp.response(204)
    def delete(self, reference_id: int) -> None:
        """Delete a reference"""
        reference = get_scoped(db_session(), context(), Reference, reference_id)
        check_if_match(reference)
        references.delete_reference(db_session(), context(), reference)
