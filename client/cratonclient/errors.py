"""One exception hierarchy for everything the client raises.

Every error the API answers has one shape, ``{"error": {"code", "message", "fields",
"request_id"}}``; :func:`from_response` turns it into the subclass of :class:`CratonError` for
its status, keeping all four. Errors that never reached an answer (a refused connection, a
timeout, a broken TLS handshake) are :class:`ConnectionFailed`, with ``code`` None.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class CratonError(Exception):
    """Base of every error the client raises.

    ``code`` is the HTTP status (None when no answer came), ``message`` the server's words,
    ``fields`` maps each field at fault to the reason, ``request_id`` is the id the server
    logged the request under (quote it to an operator).
    """

    def __init__(self, message: str, *, code: int | None = None,
                 fields: Mapping[str, Any] | None = None, request_id: str | None = None,
                 method: str | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.fields: dict[str, Any] = dict(fields or {})
        self.request_id = request_id
        self.method = method
        self.url = url

    def __str__(self) -> str:
        text = f"{self.code} {self.message}" if self.code else self.message
        if self.fields and not all(str(reason) in self.message
                                   for reason in self.fields.values()):
            text += " (" + "; ".join(f"{name}: {reason}"
                                     for name, reason in self.fields.items()) + ")"
        if self.request_id:
            text += f" [request {self.request_id}]"
        return text


class ConnectionFailed(CratonError):
    """No answer: the server could not be reached, or did not answer in time."""


class BundleError(CratonError):
    """A bundle could not be extracted safely (an entry would land outside the directory, or is
    not a plain file or directory)."""


class StreamError(CratonError):
    """The event stream could not be resumed after repeated dropped connections, or the
    server answered something that is not an event stream."""


class JobTimeout(CratonError, TimeoutError):
    """A job did not end within the time a wait allowed (the job itself runs on).
    ``job_id`` and ``status`` (its last known state) say which and where it was."""

    def __init__(self, message: str, *, job_id: int, status: str | None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.status = status


class HttpError(CratonError):
    """The server answered with an error status."""


class BadRequest(HttpError):
    """400: the request is malformed (a header, a query argument)."""


class Unauthorized(HttpError):
    """401: no credentials, or a wrong, expired or revoked key or token."""


class Forbidden(HttpError):
    """403: the credentials do not allow this (the message names the permission)."""


class NotFound(HttpError):
    """404: no such object, or one of another tenant."""


class Conflict(HttpError):
    """409 (the change clashes with the current state: a cycle, a duplicate name) or 412
    (If-Match named an ETag that is no longer current: someone changed the object since it
    was read; refresh it and try again)."""


class PayloadTooLarge(HttpError):
    """413: the request body, or a bulk request, is over a configured limit."""


class InvalidInput(HttpError):
    """422: a field's value is refused; ``fields`` names each with the reason."""


class TooManyRequests(HttpError):
    """429: a quota or a rate limit; ``retry_after`` is the server's hint in seconds."""

    retry_after: float | None = None


class ServerError(HttpError):
    """5xx: the server (or something it depends on, for 502) failed."""


_BY_STATUS: dict[int, type[HttpError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
    412: Conflict, 413: PayloadTooLarge, 422: InvalidInput, 429: TooManyRequests,
}


def error_for(status: int, body: Any, headers: Mapping[str, str], *, method: str | None = None,
              url: str | None = None) -> HttpError:
    """The exception for an error answer of ``status`` whose JSON body is ``body`` (or None
    when it was not JSON)."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        error = {}
    message = error.get("message") or f"{method or 'request'} {url or ''} answered {status}"
    fields = error.get("fields")
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else HttpError)
    exc = cls(str(message), code=status, fields=fields if isinstance(fields, Mapping) else None,
              request_id=error.get("request_id") or headers.get("X-Request-Id"),
              method=method, url=url)
    if isinstance(exc, TooManyRequests):
        try:
            exc.retry_after = float(headers.get("Retry-After", ""))
        except ValueError:
            exc.retry_after = None
    return exc
