"""The one place requests leave the client: credentials, the browser-safety header, TLS,
timeouts, retries, the error mapping and the ``--debug`` log of what was exchanged."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from cratonclient import __version__
from cratonclient.errors import ConnectionFailed, CratonError, Unauthorized, error_for

if TYPE_CHECKING:
    from keystoneauth1.session import Session as KeystoneSession

LOG = logging.getLogger("cratonclient.http")

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({429, 502, 503, 504})
SENSITIVE_HEADERS = frozenset({"authorization", "x-auth-token", "x-subject-token",
                               "x-service-token"})
SENSITIVE_PATHS = ("/secrets", "/reveal", "/apikeys")
"""Requests and answers of these may carry a secret or a key: --debug never prints their
bodies."""
LOGGED_BODY = 2000


def retry_policy(retries: int, backoff: float) -> Retry:
    """Back off and try again on a connection that could not be made, a dropped one and on
    429/502/503/504 (honouring Retry-After); dropped connections and error statuses are retried
    only for idempotent methods (a POST that may have reached the server is never repeated),
    a connection that was never made is retried for every method."""
    return Retry(total=retries, connect=retries, read=retries, status=retries, other=0,
                 backoff_factor=backoff, backoff_max=30.0, status_forcelist=RETRY_STATUSES,
                 allowed_methods=IDEMPOTENT, respect_retry_after_header=True,
                 raise_on_status=False, raise_on_redirect=False)


class Transport:
    """Sends requests to one Craton API.

    ``url`` is the API's root (``http://host:7780``, without ``/v1``). Credentials: an
    ``api_key`` (sent as ``Authorization: Bearer``), or a keystoneauth1 ``session`` (its auth
    plugin adds ``X-Auth-Token``; without ``url`` the endpoint comes from its service
    catalog), or neither (``noauth``). ``tenant``/``roles`` are sent as ``X-Craton-Tenant`` /
    ``X-Craton-Roles``, which only a ``noauth`` server reads.
    """

    def __init__(self, url: str | None = None, *, api_key: str | None = None,
                 session: KeystoneSession | None = None, service_type: str = "craton",
                 interface: str = "public", region_name: str | None = None,
                 tenant: int | str | None = None, roles: str | None = None,
                 verify: bool | str = True, cert: str | tuple[str, str] | None = None,
                 timeout: float | tuple[float, float] = (10.0, 60.0), retries: int = 3,
                 backoff: float = 0.5) -> None:
        self.keystone = session
        self.http = session.session if session is not None else requests.Session()
        adapter = HTTPAdapter(max_retries=retry_policy(retries, backoff))
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)
        if session is None:
            self.http.verify = verify
            self.http.cert = cert
            # Proxies and CA bundles named by the environment still apply, but a ~/.netrc
            # entry must not replace the API key with Basic credentials: requests consults
            # .netrc only when the session has no auth of its own.
            self.http.auth = _headers_as_given
        self.timeout = timeout
        if url is None:
            if session is None:
                raise ValueError("a Craton URL is needed (or a Keystone session whose catalog "
                                 "lists Craton)")
            try:
                url = session.get_endpoint(service_type=service_type, interface=interface,
                                           region_name=region_name)
            except Exception as exc:
                failure = _keystone_failure(exc)
                if failure is None:
                    raise
                raise failure from exc
            if not url:
                raise ValueError(f"the Keystone catalog lists no {service_type!r} endpoint")
        self.url = url.rstrip("/")
        root = urlsplit(self.url)
        if root.scheme not in ("http", "https") or not root.netloc:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._root = root
        self.headers = {"User-Agent": f"cratonclient/{__version__}", "Accept": "application/json",
                        # Shows the server this request was not forged by another site's form
                        # (every write without a JSON body needs it).
                        "X-Craton-Request": "1"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        if tenant is not None:
            self.headers["X-Craton-Tenant"] = str(tenant)
        if roles:
            self.headers["X-Craton-Roles"] = roles

    def absolute(self, path_or_url: str) -> str:
        """The full URL of an API path (``/v1/hosts``) or of a ``next`` link, always on this
        API's scheme and host: credentials never follow a link elsewhere."""
        parts = urlsplit(path_or_url)
        path = parts.path
        if not parts.netloc or not path.startswith(self._root.path):
            path = self._root.path + path
        return urlunsplit((self._root.scheme, self._root.netloc, path, parts.query, ""))

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json: Any = None, headers: Mapping[str, str] | None = None,
                stream: bool = False, ok: tuple[int, ...] = (),
                timeout: float | tuple[float, float] | None = None) -> requests.Response:
        """Send one request; answers of 400 and above raise the matching
        :class:`~cratonclient.errors.CratonError` unless their status is in ``ok``."""
        url = self.absolute(path)
        sent = {**self.headers, **(headers or {})}
        kwargs: dict[str, Any] = {"params": _query(params), "headers": sent, "stream": stream,
                                  "timeout": timeout or self.timeout, "allow_redirects": False}
        if json is not None:
            kwargs["json"] = json
        if LOG.isEnabledFor(logging.DEBUG):
            kwargs["hooks"] = {"response": _log_exchange}
        try:
            if self.keystone is not None:
                response = self.keystone.request(url, method, raise_exc=False, log=False,
                                                 **kwargs)
            else:
                response = self.http.request(method, url, **kwargs)
        except requests.RequestException as exc:
            raise ConnectionFailed(f"{method} {url}: {_reason(exc)}", method=method,
                                   url=url) from exc
        except Exception as exc:
            failure = _keystone_failure(exc, method, url) if self.keystone is not None else None
            if failure is None:
                raise
            raise failure from exc
        if response.status_code >= 400 and response.status_code not in ok:
            try:
                body = response.json()
            except ValueError:
                body = None
            response.close()
            raise error_for(response.status_code, body, response.headers, method=method,
                            url=url)
        return response

    def close(self) -> None:
        self.http.close()


def _headers_as_given(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """The session's auth: the request's own headers carry the credentials."""
    return request


def _query(params: Mapping[str, Any] | None) -> list[tuple[str, str]] | None:
    """Query arguments; a list repeats its argument, None leaves it out, booleans are
    ``true``/``false``."""
    if not params:
        return None
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        for item in value if isinstance(value, list | tuple | set | frozenset) else [value]:
            if item is None:
                continue
            pairs.append((name, ("true" if item else "false") if isinstance(item, bool)
                          else str(item)))
    return pairs


def _reason(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return "no answer in time"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS failed: {exc}"
    if isinstance(exc, requests.ConnectionError):
        return "could not connect"
    return str(exc)


def _keystone_failure(exc: Exception, method: str | None = None,
                      url: str | None = None) -> CratonError | None:
    """What keystoneauth1 raised for a request (sent through its session) or while getting a
    token or the catalog, as the client's own error: no connection (to Craton or to Keystone)
    is ConnectionFailed; credentials Keystone refuses
    (a wrong user name, password, domain or project) are Unauthorized, saying so; any other
    Keystone failure (an auth option missing, an error status) a CratonError with
    keystoneauth1's words. None for what is not keystoneauth1's."""
    from keystoneauth1 import exceptions

    if isinstance(exc, exceptions.ConnectionError):
        where = f"{method} {url}: " if url else ""
        return ConnectionFailed(f"{where}{exc}", method=method, url=url)
    if isinstance(exc, exceptions.Unauthorized):
        where = f" at {exc.url}" if exc.url else ""
        # keystoneauth1's message ends with " (HTTP 401) (Request-ID: …)": said once, below.
        reason = exc.message.split(" (HTTP ")[0]
        return Unauthorized(f"Keystone{where} refused the credentials (user name, password, "
                            f"domain or project): {reason}", code=401,
                            request_id=exc.request_id, method=method, url=url)
    if isinstance(exc, exceptions.HttpError):
        return error_for(exc.http_status or 500, {"error": {"message": f"Keystone: {exc}"}},
                         {}, method=method, url=url)
    if isinstance(exc, exceptions.ClientException):
        return CratonError(f"Keystone: {exc}", method=method, url=url)
    return None


def _redacted(headers: Mapping[str, str]) -> str:
    return "".join(f"  {name}: {'<redacted>' if name.lower() in SENSITIVE_HEADERS else value}\n"
                   for name, value in headers.items())


def _log_exchange(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """``--debug``: each request and answer, credentials redacted, and no body of a request
    that may carry a secret or key."""
    request = response.request
    secret = any(part in (request.path_url or "") for part in SENSITIVE_PATHS)
    body = request.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    shown = ""
    if body:
        shown = "  <body not shown: may hold a secret>\n" if secret else \
            f"  {body[:LOGGED_BODY]}\n"
    LOG.debug("REQ %s %s\n%s%s", request.method, request.url, _redacted(request.headers), shown)
    answer = ""
    if response.headers.get("Content-Type", "").startswith("application/json"):
        answer = "  <body not shown: may hold a secret or key>\n" if secret else \
            f"  {response.text[:LOGGED_BODY]}\n"
    LOG.debug("RESP %s %s (%.3f s)\n%s%s", response.status_code, response.reason,
              response.elapsed.total_seconds(), _redacted(response.headers), answer)
