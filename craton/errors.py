"""Craton's own exceptions. Domain code raises these; the API maps them to HTTP in one place
(``craton.api.errors``), so the same rule holds for every endpoint."""

from __future__ import annotations

from collections.abc import Mapping


class CratonError(Exception):
    """Base class. ``status`` is the HTTP status the API answers with; ``fields`` maps a field
    path (``name``, ``hosts.3.groups``) to the reason that field was refused; ``headers`` go
    with the answer (``Retry-After``)."""

    status = 500
    headers: Mapping[str, str] = {}
    """Response headers the error comes with (``Retry-After`` on a 429, …)."""

    def __init__(self, message: str, *, fields: Mapping[str, str] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = dict(fields or {})
        self.headers = dict(type(self).headers if headers is None else headers)


class BadRequest(CratonError):
    status = 400


class Unauthorized(CratonError):
    status = 401


class Forbidden(CratonError):
    status = 403


class NotFound(CratonError):
    status = 404


class Conflict(CratonError):
    """A duplicate name, a cycle, a parent that still has children, a concurrent write."""

    status = 409


class TooLarge(CratonError):
    """The request as a whole is more than the server accepts at once (a limit of [limits])."""

    status = 413


class PreconditionFailed(CratonError):
    """If-Match named a version that is no longer current."""

    status = 412


class InvalidInput(CratonError):
    """Well-formed request whose values cannot be accepted."""

    status = 422


class QuotaExceeded(CratonError):
    """The tenant holds (or runs) as much as its quota allows; ``fields`` names the quota."""

    status = 429


def summarize(fields: Mapping[str, str], what: str = "") -> str:
    """One line for a map of field → reason: the reason itself when there is one field."""
    if len(fields) == 1:
        field, reason = next(iter(fields.items()))
        return f"{field}: {reason}"
    return f"{len(fields)} invalid fields{what}: " + ", ".join(sorted(fields)[:10])


def invalid(fields: Mapping[str, str], what: str = "") -> InvalidInput:
    """The 422 for the given field → reason map."""
    return InvalidInput(summarize(fields, what), fields=fields)
