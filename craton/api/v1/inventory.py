"""/v1/inventory/{region_id}.tgz|.zip|.json — bundles Ansible runs as they are"""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView

from craton.api.common import Blueprint, context, not_modified_etag, services
from craton.api.v1 import schemas
from craton.inventory.bundle import BundleSpec, prepare_bundle
from craton.inventory.select import build_filter

blp = Blueprint("inventory", __name__, url_prefix="/v1",
                description="Inventory bundles: a selection of a region as ansible-runner "
                            "private data directories (.tgz, .zip) or dynamic-inventory JSON.")

ARCHIVE = {"schema": {"type": "string", "format": "binary"}}


@blp.route("/inventory/<int:region_id>.<any(tgz, zip, json):fmt>")
class InventoryBundle(MethodView):
    @blp.arguments(schemas.BundleArgs, location="query")
    @blp.doc(responses={
        "200": {"description": "The bundle, streamed; its ETag is known before it is built.",
                "content": {"application/gzip": ARCHIVE, "application/zip": ARCHIVE,
                            "application/json": {"schema": {"type": "object"}}}},
        "304": {"description": "If-None-Match named the current ETag"},
        "502": {"description": "A reference could not be fetched"},
    })
    def get(self, args: dict[str, Any], region_id: int, fmt: str) -> Any:
        """Download a region's inventory (filtered like the hosts list)"""
        spec = BundleSpec(region_id=region_id, filter=build_filter(args, region_id),
                          layout=args["layout"], format=fmt)
        shared = services()
        bundle = prepare_bundle(shared.db, context(), spec, shared.fetcher, shared.secrets)
        unchanged = not_modified_etag(bundle.etag)
        if unchanged is not None:
            bundle.close()
            return unchanged
        try:
            bundle.load()
        except BaseException:
            bundle.close()
            raise
        headers = {
            "ETag": bundle.etag,
            "Content-Disposition": f'attachment; filename="{bundle.filename}"',
            "Cache-Control": "private, no-store" if bundle.include_secrets else "private",
        }
        return Response(bundle.stream(), mimetype=bundle.content_type, headers=headers)
