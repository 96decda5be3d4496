"""/v1/hosts/{id}/secrets and /v1/secrets/{id}: metadata everywhere, content only from reveal"""

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
from craton.db.models import Host, Secret
from craton.db.scope import get_scoped, scoped_select
from craton.secrets import store

blp = Blueprint("secrets", __name__, url_prefix="/v1",
                description="Secrets of a host (SSH keys, certificates), encrypted at rest. "
                            "Listings show metadata; content comes only from reveal.")


@blp.route("/hosts/<int:host_id>/secrets")
class HostSecrets(MethodView):
    @blp.arguments(schemas.PageArgs, location="query")
    @blp.response(200, schemas.SecretList)
    def get(self, args: dict[str, Any], host_id: int) -> Any:
        """List a host's secrets (metadata only)"""
        host = get_scoped(db_session(), context(), Host, host_id)
        stmt = scoped_select(context(), Secret).where(Secret.host_id == host.id)
        return paginate(stmt, Secret.id, args)

    @blp.arguments(schemas.SecretSchema)
    @blp.response(201, schemas.SecretSchema)
    @blp.doc(responses={"429": schemas.quota_response("secrets")})
    def post(self, data: dict[str, Any], host_id: int) -> Any:
        """Store a secret for a host"""
        host = get_scoped(db_session(), context(), Host, host_id)
        secret = store.create_secret(db_session(), context(), host, data, services().secrets,
                                     quotas=services().settings.quotas)
        return with_etag(secret, 201, Location=f"/v1/secrets/{secret.id}")


@blp.route("/secrets/<int:secret_id>")
class SecretItem(MethodView):
    @blp.response(200, schemas.SecretSchema)
    def get(self, secret_id: int) -> Any:
        """Show a secret's metadata"""
        secret = get_scoped(db_session(), context(), Secret, secret_id)
        return not_modified(secret) or with_etag(secret)

    @blp.arguments(schemas.SecretPatchSchema)
    @blp.response(200, schemas.SecretSchema)
    def patch(self, data: dict[str, Any], secret_id: int) -> Any:
        """Rename a secret, change its kind or replace its content"""
        secret = get_scoped(db_session(), context(), Secret, secret_id)
        check_if_match(secret)
        return with_etag(store.update_secret(db_session(), context(), secret, data,
                                             services().secrets))

    @blp.response(204)
    def delete(self, secret_id: int) -> None:
        """Delete a secret"""
        secret = get_scoped(db_session(), context(), Secret, secret_id)
        check_if_match(secret)
        store.delete_secret(db_session(), context(), secret, services().secrets)


@blp.route("/secrets/<int:secret_id>/reveal")
class SecretReveal(MethodView):
    @blp.response(200, schemas.RevealedSecretSchema)
    def post(self, secret_id: int) -> Any:
        """Reveal a secret's content (needs a role allowed to read secrets)"""
        secret = get_scoped(db_session(), context(), Secret, secret_id)
        content = store.reveal_secret(context(), secret, services().secrets)
        body = {"id": secret.id, "name": secret.name, "kind": secret.kind, "content": content}
        return body, 200, {"Cache-Control": "no-store"}
