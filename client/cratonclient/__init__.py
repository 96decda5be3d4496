"""Craton's Python client: ``Client(url, api_key=...)`` and typed objects for every ``/v1``
resource.

Names are imported on first use, so ``import cratonclient`` (which the ``craton`` command
does first) costs nothing until the client is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from cratonclient.bundles import Bundle
    from cratonclient.client import Client
    from cratonclient.errors import (
        BadRequest,
        BundleError,
        Conflict,
        ConnectionFailed,
        CratonError,
        Forbidden,
        HttpError,
        InvalidInput,
        JobTimeout,
        NotFound,
        PayloadTooLarge,
        ServerError,
        StreamError,
        TooManyRequests,
        Unauthorized,
    )
    from cratonclient.managers import Page
    from cratonclient.resources import (
        ApiKey,
        Group,
        Host,
        HostJob,
        HostStatus,
        Job,
        JobEvent,
        JobHost,
        Provenance,
        Reference,
        Region,
        Secret,
        Tenant,
        Variables,
    )

_WHERE = {
    "Client": "client", "Bundle": "bundles", "Page": "managers",
    **dict.fromkeys(("CratonError", "ConnectionFailed", "BundleError", "StreamError",
                     "JobTimeout", "HttpError", "BadRequest", "Unauthorized", "Forbidden",
                     "NotFound", "Conflict", "PayloadTooLarge", "InvalidInput",
                     "TooManyRequests", "ServerError"), "errors"),
    **dict.fromkeys(("ApiKey", "Group", "Host", "HostJob", "HostStatus", "Job", "JobEvent",
                     "JobHost", "Provenance", "Reference", "Region", "Secret", "Tenant",
                     "Variables"), "resources"),
}

__all__ = [
    "ApiKey",
    "BadRequest",
    "Bundle",
    "BundleError",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "CratonError",
    "Forbidden",
    "Group",
    "Host",
    "HostJob",
    "HostStatus",
    "HttpError",
    "InvalidInput",
    "Job",
    "JobEvent",
    "JobHost",
    "JobTimeout",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "Provenance",
    "Reference",
    "Region",
    "Secret",
    "ServerError",
    "StreamError",
    "Tenant",
    "TooManyRequests",
    "Unauthorized",
    "Variables",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"cratonclient.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'cratonclient' has no attribute {name!r}")
