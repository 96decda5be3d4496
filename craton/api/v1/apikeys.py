"""/v1/tenants/{id}/apikeys and /v1/apikeys/{id}: a tenant admin's API keys"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from craton.api.common import Blueprint, context, db_session, paginate, services
from craton.api.v1 import schemas
from craton.context import Action
from craton.db.models import ApiKey, Tenant
from craton.db.scope import get_scoped, scoped_select
from craton.identity import apikeys

blp = Blueprint("apikeys", __name__, url_prefix="/v1",
                description="API keys (for [api] auth_strategy = apikey), managed by the "
                            "tenant's admins. A key is shown once, when it is made; Craton "
                            "keeps only a keyed hash of it.")


def _hash_key() -> bytes:
    return apikeys.read_or_create_hash_key(services().settings.apikey_hash_key_file)


@blp.route("/tenants/<int:tenant_id>/apikeys")
class TenantApiKeys(MethodView):
    @blp.arguments(schemas.PageArgs, location="query")
    @blp.response(200, schemas.ApiKeyList)
    def get(self, args: dict[str, Any], tenant_id: int) -> Any:
        """List a tenant's API keys, revoked and expired ones included (never their secrets)"""
        tenant = get_scoped(db_session(), context(), Tenant, tenant_id)
        context().require(Action.MANAGE_API_KEYS)
        stmt = scoped_select(context(), ApiKey).where(ApiKey.tenant_id == tenant.id)
        return paginate(stmt, ApiKey.id, args)

    @blp.arguments(schemas.ApiKeySchema)
    @blp.response(201, schemas.ApiKeyCreatedSchema)
    def post(self, data: dict[str, Any], tenant_id: int) -> Any:
        """Make an API key for the tenant; the answer holds the key, shown this once"""
        tenant = get_scoped(db_session(), context(), Tenant, tenant_id)
        row, key = apikeys.create_key(
            db_session(), context(), _hash_key(), tenant_id=tenant.id, name=data["name"],
            role=data["role"], expires_at=apikeys.expiry_of(data.get("expires_at")))
        row.key = key
        return row, 201, {"Location": f"/v1/apikeys/{row.id}", "Cache-Control": "no-store"}


@blp.route("/apikeys/<int:apikey_id>")
class ApiKeyItem(MethodView):
    @blp.response(200, schemas.ApiKeySchema)
    def get(self, apikey_id: int) -> Any:
        """Show an API key (never its secret)"""
        key = get_scoped(db_session(), context(), ApiKey, apikey_id)
        context().require(Action.MANAGE_API_KEYS)
        return key

    @blp.response(204)
    def delete(self, apikey_id: int) -> None:
        """Revoke an API key: it answers 401 from now on (it stays listed, with revoked_at)"""
        key = get_scoped(db_session(), context(), ApiKey, apikey_id)
        apikeys.revoke_key(db_session(), context(), key)
