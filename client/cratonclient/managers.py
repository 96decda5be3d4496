"""One manager per collection of ``/v1``: list (lazily, page after page), get, create, and the
collection's own operations. Managers act by id and unconditionally; the objects they return
act conditionally (If-Match) on the version they show."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import quote

from cratonclient.errors import (
    ConnectionFailed,
    JobTimeout,
    ServerError,
    StreamError,
    TooManyRequests,
)
from cratonclient.resources import (
    ApiKey,
    Group,
    Host,
    HostJob,
    HostStatus,
    Job,
    JobEvent,
    JobHost,
    Reference,
    Region,
    Resource,
    Secret,
    Tenant,
    Variables,
)

if TYPE_CHECKING:
    from requests import Response
    from sseclient import Event

    from cratonclient.client import Client

R = TypeVar("R", bound=Resource)

PAGE_SIZE = 1000
"""Items asked per page: the server's default cap (``[api] max_page_size``)."""


class Page(Generic[R]):
    """A list that is read lazily: iterating it asks for the first page, and follows the
    server's ``next`` link only when the items before are used up. Iterate it once per
    call; ``list(page)`` reads everything."""

    def __init__(self, client: Client, path: str, make: Callable[[Mapping[str, Any]], R],
                 params: Mapping[str, Any] | None = None, page_size: int = PAGE_SIZE) -> None:
        self._client = client
        self._path = path
        self._make = make
        self._params = {**(params or {}), "limit": page_size}
        self.pages = 0
        """How many pages have been read so far."""

    def __iter__(self) -> Iterator[R]:
        url: str | None = self._path
        params: Mapping[str, Any] | None = self._params
        while url:
            body = self._client.transport.request("GET", url, params=params).json()
            self.pages += 1
            for item in body["items"]:
                yield self._make(item)
            url, params = body.get("next"), None

    def first(self) -> R | None:
        """The first item, reading one page at most."""
        return next(iter(self), None)


class Manager:
    def __init__(self, client: Client) -> None:
        self.client = client

    @property
    def transport(self) -> Any:
        return self.client.transport

    def _get(self, cls: type[R], path: str, params: Mapping[str, Any] | None = None) -> R:
        response = self.transport.request("GET", path, params=params)
        return cls(self.client, response.json(), response.headers.get("ETag"))

    def _post(self, cls: type[R], path: str, body: Any, **kwargs: Any) -> R:
        response = self.transport.request("POST", path, json=body, **kwargs)
        return cls(self.client, response.json(), response.headers.get("ETag"))

    def _page(self, cls: type[R], path: str, params: Mapping[str, Any] | None = None,
              page_size: int = PAGE_SIZE) -> Page[R]:
        client = self.client
        return Page(client, path, lambda body: cls(client, body), params, page_size)

    def _patch(self, cls: type[R], path: str, body: Mapping[str, Any],
               if_match: str | None) -> R:
        headers = {"If-Match": if_match} if if_match else None
        response = self.transport.request("PATCH", path, json=dict(body), headers=headers)
        return cls(self.client, response.json(), response.headers.get("ETag"))


def host_filters(name: str | None = None, group: str | None = None,
                 var: Mapping[str, Any] | Iterable[str] | None = None,
                 state: str | Iterable[str] | None = None, ip_address: str | None = None,
                 reachable: bool | None = None, id: Iterable[int] | None = None,
                 ) -> dict[str, Any]:
    """The hosts list's filters as query arguments. ``var`` is a mapping (``{"rack": "r7"}``;
    a None value means "the key is set") or ``key:value`` strings; ``group`` includes its
    subgroups' hosts."""
    if isinstance(var, Mapping):
        var = [str(key) if value is None else f"{key}:{_filter_value(value)}"
               for key, value in var.items()]
    return {"name": name, "group": group, "var": list(var or ()) or None,
            "state": [state] if isinstance(state, str) else state,
            "ip_address": ip_address, "reachable": reachable,
            "id": list(id) if id is not None else None}


def _filter_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class Tenants(Manager):
    def list(self) -> Page[Tenant]:
        return self._page(Tenant, "/v1/tenants")

    def get(self, tenant_id: int) -> Tenant:
        return self._get(Tenant, f"/v1/tenants/{tenant_id}")

    def create(self, name: str, **fields: Any) -> Tenant:
        """Fields: ``description``, ``quotas``."""
        return self._post(Tenant, "/v1/tenants", {"name": name, **fields})

    def update(self, tenant_id: int, *, if_match: str | None = None, **fields: Any) -> Tenant:
        return self._patch(Tenant, f"/v1/tenants/{tenant_id}", fields, if_match)

    def delete(self, tenant_id: int, cascade: bool = False) -> None:
        self.transport.request("DELETE", f"/v1/tenants/{tenant_id}",
                               params={"cascade": cascade or None})


class Regions(Manager):
    def list(self, tenant: int | None = None, name: str | None = None) -> Page[Region]:
        return self._page(Region, "/v1/regions", {"tenant_id": tenant, "name": name})

    def get(self, region_id: int) -> Region:
        return self._get(Region, f"/v1/regions/{region_id}")

    def create(self, tenant: int, name: str, **fields: Any) -> Region:
        """Fields: ``description``, ``variables``."""
        return self._post(Region, f"/v1/tenants/{tenant}/regions", {"name": name, **fields})

    def update(self, region_id: int, *, if_match: str | None = None, **fields: Any) -> Region:
        return self._patch(Region, f"/v1/regions/{region_id}", fields, if_match)

    def delete(self, region_id: int, cascade: bool = False) -> None:
        self.transport.request("DELETE", f"/v1/regions/{region_id}",
                               params={"cascade": cascade or None})

    def variables(self, region_id: int) -> Variables:
        response = self.transport.request("GET", f"/v1/regions/{region_id}/variables")
        return Variables(response.json(), response.headers.get("ETag"))

    def update_variables(self, region_id: int, changes: Mapping[str, Any]) -> Variables:
        """Merge ``changes`` (None deletes a key)."""
        response = self.transport.request("PATCH", f"/v1/regions/{region_id}/variables",
                                          json={"variables": dict(changes)})
        return Variables(response.json(), response.headers.get("ETag"))

    def import_inventory(self, region_id: int, fmt: str, content: str | None = None,
                         files: Mapping[str, str] | None = None,
                         dry_run: bool = False) -> dict[str, Any]:
        """Read an Ansible inventory (``fmt``: ini, yaml, json or directory, whose ``files``
        map relative paths to text) into the region; the plan of what was (or, with
        ``dry_run``, would be) created and changed."""
        body: dict[str, Any] = {"format": fmt}
        if content is not None:
            body["content"] = content
        if files is not None:
            body["files"] = dict(files)
        response = self.transport.request("POST", f"/v1/regions/{region_id}/import",
                                          json=body, params={"dry_run": dry_run or None})
        return dict(response.json())


class Groups(Manager):
    def list(self, region: int | None = None, name: str | None = None) -> Page[Group]:
        if region is not None:
            return self._page(Group, f"/v1/regions/{region}/groups", {"name": name})
        return self._page(Group, "/v1/groups", {"name": name})

    def get(self, group_id: int) -> Group:
        return self._get(Group, f"/v1/groups/{group_id}")

    def create(self, region: int, name: str, **fields: Any) -> Group:
        """Fields: ``description``, ``variables``, ``parents``, ``children``, ``depends_on``,
        ``hosts`` (names or ids)."""
        return self._post(Group, f"/v1/regions/{region}/groups", {"name": name, **fields})

    def update(self, group_id: int, *, if_match: str | None = None, **fields: Any) -> Group:
        return self._patch(Group, f"/v1/groups/{group_id}", fields, if_match)

    def delete(self, group_id: int) -> None:
        self.transport.request("DELETE", f"/v1/groups/{group_id}")

    def hosts(self, group_id: int, descendants: bool = False) -> Page[Host]:
        return self._page(Host, f"/v1/groups/{group_id}/hosts",
                          {"descendants": descendants or None})

    def children(self, group_id: int) -> Page[Group]:
        return self._page(Group, f"/v1/groups/{group_id}/children")

    def add_children(self, group_id: int, children: Iterable[int | str]) -> None:
        self.transport.request("POST", f"/v1/groups/{group_id}/children",
                               json={"children": list(children)})

    def remove_children(self, group_id: int, children: Iterable[int | str]) -> None:
        self.transport.request("DELETE", f"/v1/groups/{group_id}/children",
                               json={"children": list(children)})

    def add_hosts(self, group_id: int, hosts: Iterable[int | str]) -> None:
        self.transport.request("POST", f"/v1/groups/{group_id}/hosts",
                               json={"hosts": list(hosts)})

    def remove_hosts(self, group_id: int, hosts: Iterable[int | str]) -> None:
        self.transport.request("DELETE", f"/v1/groups/{group_id}/hosts",
                               json={"hosts": list(hosts)})

    def variables(self, group_id: int) -> Variables:
        response = self.transport.request("GET", f"/v1/groups/{group_id}/variables")
        return Variables(response.json(), response.headers.get("ETag"))


class Hosts(Manager):
    def list(self, region: int | None = None, *, page_size: int = PAGE_SIZE,
             **filters: Any) -> Page[Host]:
        """Hosts, filtered as :func:`host_filters` says (``group=``, ``var=``, ``name=``,
        ``state=``, ``ip_address=``, ``reachable=``, ``id=``)."""
        params = host_filters(**filters)
        if region is not None:
            return self._page(Host, f"/v1/regions/{region}/hosts", params, page_size)
        return self._page(Host, "/v1/hosts", params, page_size)

    def get(self, host_id: int) -> Host:
        return self._get(Host, f"/v1/hosts/{host_id}")

    def create(self, region: int, name: str, **fields: Any) -> Host:
        """Fields: ``ip_address``, ``fqdn``, ``ssh_port``, ``ssh_user``, ``state``,
        ``groups`` (names), ``variables``."""
        return self._post(Host, f"/v1/regions/{region}/hosts", {"name": name, **fields})

    def create_many(self, region: int, hosts: Iterable[Mapping[str, Any]]) -> list[Host]:
        """Create many hosts in one request: all are created, or none and the error's
        ``fields`` name each bad item (``0.name``, ``3.variables.x``)."""
        response = self.transport.request("POST", f"/v1/regions/{region}/hosts",
                                          json=[dict(host) for host in hosts])
        return [Host(self.client, body) for body in response.json()["items"]]

    def update(self, host_id: int, *, if_match: str | None = None, **fields: Any) -> Host:
        """Change fields; ``variables`` are merged (None deletes a key), ``groups``
        replaced."""
        return self._patch(Host, f"/v1/hosts/{host_id}", fields, if_match)

    def delete(self, host_id: int) -> None:
        self.transport.request("DELETE", f"/v1/hosts/{host_id}")

    def variables(self, host_id: int) -> Variables:
        response = self.transport.request("GET", f"/v1/hosts/{host_id}/variables")
        return Variables(response.json(), response.headers.get("ETag"))

    def resolved_variables(self, host_id: int, provenance: bool | str = True) -> Variables:
        """What Ansible will see for the host, each key with the object that set it;
        ``provenance="full"`` adds what each value overrode."""
        params = {"resolved": True, "provenance": "full" if provenance == "full" else None}
        response = self.transport.request("GET", f"/v1/hosts/{host_id}/variables",
                                          params=params)
        return Variables(response.json(), response.headers.get("ETag"))

    def update_variables(self, host_id: int, changes: Mapping[str, Any]) -> Variables:
        """Merge ``changes`` into the host's variables (None deletes a key)."""
        response = self.transport.request("PATCH", f"/v1/hosts/{host_id}/variables",
                                          json={"variables": dict(changes)})
        return Variables(response.json(), response.headers.get("ETag"))

    def delete_variable(self, host_id: int, key: str) -> None:
        self.transport.request("DELETE",
                               f"/v1/hosts/{host_id}/variables/{quote(key, safe='')}")

    def status(self, host_id: int) -> HostStatus:
        return self._get(HostStatus, f"/v1/hosts/{host_id}/status")

    def jobs(self, host_id: int) -> Page[HostJob]:
        return self._page(HostJob, f"/v1/hosts/{host_id}/jobs")


class Secrets(Manager):
    def list(self, host: int) -> Page[Secret]:
        return self._page(Secret, f"/v1/hosts/{host}/secrets")

    def get(self, secret_id: int) -> Secret:
        return self._get(Secret, f"/v1/secrets/{secret_id}")

    def create(self, host: int, name: str, content: str, kind: str = "opaque") -> Secret:
        """``kind``: ssh_private_key, pem, password or opaque."""
        return self._post(Secret, f"/v1/hosts/{host}/secrets",
                          {"name": name, "kind": kind, "content": content})

    def reveal(self, secret_id: int) -> str:
        response = self.transport.request("POST", f"/v1/secrets/{secret_id}/reveal")
        return str(response.json()["content"])

    def delete(self, secret_id: int) -> None:
        self.transport.request("DELETE", f"/v1/secrets/{secret_id}")


class References(Manager):
    def list(self, group: int) -> Page[Reference]:
        return self._page(Reference, f"/v1/groups/{group}/references")

    def get(self, reference_id: int) -> Reference:
        return self._get(Reference, f"/v1/references/{reference_id}")

    def create(self, group: int, name: str, url: str, **fields: Any) -> Reference:
        """Fields: ``ref`` (a git ref), ``path`` (a file inside a git repository)."""
        return self._post(Reference, f"/v1/groups/{group}/references",
                          {"name": name, "url": url, **fields})

    def delete(self, reference_id: int) -> None:
        self.transport.request("DELETE", f"/v1/references/{reference_id}")


class ApiKeys(Manager):
    def list(self, tenant: int) -> Page[ApiKey]:
        return self._page(ApiKey, f"/v1/tenants/{tenant}/apikeys")

    def get(self, apikey_id: int) -> ApiKey:
        return self._get(ApiKey, f"/v1/apikeys/{apikey_id}")

    def create(self, tenant: int, name: str, role: str,
               expires_at: str | None = None) -> ApiKey:
        """A tenant key (``role``: reader, member or admin); its ``key`` is shown this once."""
        body = {"name": name, "role": role}
        if expires_at:
            body["expires_at"] = expires_at
        return self._post(ApiKey, f"/v1/tenants/{tenant}/apikeys", body)

    def revoke(self, apikey_id: int) -> None:
        self.transport.request("DELETE", f"/v1/apikeys/{apikey_id}")


class Jobs(Manager):
    def list(self, region: int | None = None,
             status: str | Iterable[str] | None = None) -> Page[Job]:
        return self._page(Job, "/v1/jobs", {
            "region_id": region, "status": [status] if isinstance(status, str) else status})

    def get(self, job_id: int) -> Job:
        return self._get(Job, f"/v1/jobs/{job_id}")

    def submit(self, region: int, playbook: str, *, source: Mapping[str, Any] | None = None,
               filters: Mapping[str, Any] | None = None, **fields: Any) -> Job:
        """Run ``playbook`` over a selection of the region. ``source``: ``{"url", "ref"}`` or
        ``{"path"}`` (none for ``craton:ping``); ``filters``: keyword arguments as
        :func:`host_filters` takes them; fields: ``forks``, ``check``, ``diff``,
        ``extra_vars``, ``layout``."""
        body: dict[str, Any] = {"region_id": region, "playbook": playbook, **fields}
        if source is not None:
            body["source"] = dict(source)
        if filters:
            chosen = {key: value for key, value in host_filters(**filters).items()
                      if value is not None}
            body["filters"] = chosen
        return self._post(Job, "/v1/jobs", body)

    def cancel(self, job_id: int) -> Job:
        response = self.transport.request("POST", f"/v1/jobs/{job_id}/cancel")
        return Job(self.client, response.json(), response.headers.get("ETag"))

    def hosts(self, job_id: int, status: str | Iterable[str] | None = None) -> Page[JobHost]:
        return self._page(JobHost, f"/v1/jobs/{job_id}/hosts",
                          {"status": [status] if isinstance(status, str) else status})

    def events(self, job_id: int, after: int | None = None) -> Page[JobEvent]:
        """The job's recorded events after ``after`` (a ``seq``), page after page."""
        return self._page(JobEvent, f"/v1/jobs/{job_id}/events", {"after": after})

    def stream(self, job_id: int, last_event_id: int | None = None, *,
               reconnect_delay: float = 1.0, max_failures: int = 10,
               read_timeout: float = 60.0) -> Iterator[JobEvent]:
        """The job's events live, over Server-Sent Events, until the job has ended. A
        dropped connection is reopened with ``Last-Event-ID``, so no event is missed or
        repeated; after ``max_failures`` reconnects in a row that brought no event,
        StreamError. ``read_timeout`` must exceed the server's keep-alive (15 s)."""
        from requests import RequestException

        last = last_event_id
        failures = 0
        while True:
            try:
                response = self._open_stream(job_id, last, (10.0, read_timeout))
                try:
                    for message in _messages(response, None):
                        if message.event == "end":
                            return
                        event = JobEvent(self.client, json.loads(message.data))
                        last = int(message.id) if message.id else event.seq
                        failures = 0
                        yield event
                finally:
                    response.close()
            except (ConnectionFailed, RequestException) as exc:
                failures += 1
                if failures > max_failures:
                    raise StreamError(f"job {job_id}: the event stream dropped {failures} "
                                      f"times in a row ({exc})") from exc
            else:
                failures += 1
                if failures > max_failures:
                    raise StreamError(f"job {job_id}: the event stream ended {failures} "
                                      "times without its end event")
            time.sleep(reconnect_delay * min(failures, 5))

    def wait(self, job_id: int, timeout: float | None = None, *, interval: float = 0.5,
             reconnect_delay: float = 1.0, max_failures: int = 10,
             read_timeout: float = 60.0) -> Job:
        """Wait until the job has ended; the job as it then is.

        Follows the job's event stream to its end, which the server sends once the job has
        finished and its last event is stored (so :meth:`events` then holds them all); a
        dropped stream is resumed as :meth:`stream` resumes it. Only when the stream cannot
        be opened — no connection, a 429 (too many streams) or 5xx answer, an answer that
        is not an event stream — or keeps dropping (``max_failures`` times in a row) does
        it poll ``GET /v1/jobs/{id}`` instead, at most every ``interval`` seconds.

        Past ``timeout`` seconds (None: no limit), :class:`~cratonclient.errors.JobTimeout`;
        the job runs on.
        """
        from requests import RequestException

        deadline = None if timeout is None else time.monotonic() + timeout
        job = self.get(job_id)
        last, status = job.last_event, job.status
        failures = 0

        def expired() -> None:
            _check(deadline, job_id, status, timeout)

        while not job.finished:
            try:
                response = self._open_stream(job_id, last, _timeouts(deadline, read_timeout))
            except (ConnectionFailed, TooManyRequests, ServerError, StreamError):
                return self._poll(job, deadline, timeout, interval)
            ended = False
            try:
                for message in _messages(response, deadline, expired, read_timeout):
                    if message.event == "end":
                        ended = True
                        break
                    body = json.loads(message.data)
                    last, failures = body["seq"], 0
                    if body.get("kind") == "job" and (body.get("data") or {}).get("status"):
                        status = body["data"]["status"]
            except (ConnectionFailed, RequestException):
                expired()
            finally:
                response.close()
            if ended:
                job = self.get(job_id)
                if not job.finished:  # the server saw the job go quiet before it ended
                    return self._poll(job, deadline, timeout, interval)
                continue
            failures += 1
            if failures > max_failures:
                return self._poll(job, deadline, timeout, interval)
            _pause(reconnect_delay * min(failures, 5), deadline)
            expired()
        return job

    def _poll(self, job: Job, deadline: float | None, timeout: float | None,
              interval: float) -> Job:
        """``GET`` the job until it has finished (the pause grows to ``interval``)."""
        pause = min(interval, 0.2)
        while not job.finished:
            _check(deadline, job.id, job.status, timeout)
            _pause(pause, deadline)
            pause = min(pause * 1.5, interval)
            job = self.get(job.id)
        return job

    def _open_stream(self, job_id: int, last: int | None,
                     timeout: tuple[float, float]) -> Response:
        """The job's event stream after event ``last``, its answer checked to be one."""
        headers = {"Accept": "text/event-stream"}
        if last is not None:
            headers["Last-Event-ID"] = str(last)
        response = self.transport.request("GET", f"/v1/jobs/{job_id}/events",
                                          headers=headers, stream=True, timeout=timeout)
        kind = response.headers.get("Content-Type", "")
        if not kind.startswith("text/event-stream"):
            response.close()
            raise StreamError(f"job {job_id}: GET /v1/jobs/{job_id}/events answered "
                              f"{kind or 'no Content-Type'}, not an event stream")
        return response


def _messages(response: Response, deadline: float | None,
              expired: Callable[[], None] | None = None,
              read_timeout: float = 60.0) -> Iterator[Event]:
    """The SSE messages of an open stream. With a ``deadline`` (``time.monotonic()``), each
    read waits only until then (and at most ``read_timeout``), and ``expired`` (which raises
    once the deadline has passed) is called before each read and when a read fails."""
    from requests import RequestException
    from sseclient import SSEClient

    def chunks() -> Iterator[bytes]:
        received = response.iter_content(chunk_size=None)
        while True:
            if deadline is not None:
                if expired is not None:
                    expired()
                _bound_next_read(response, min(read_timeout, deadline - time.monotonic()))
            try:
                chunk = next(received)
            except StopIteration:
                return
            except RequestException:
                if expired is not None:
                    expired()
                raise
            yield chunk

    return SSEClient(chunks()).events()  # type: ignore[no-any-return]


def _bound_next_read(response: Response, seconds: float) -> None:
    """Make the next read of a streamed answer wait at most ``seconds``: urllib3 sets the
    socket's read timeout once, when the request is sent, and keep-alive comments would
    otherwise let a wait run on until the next one (every 15 s)."""
    sock = getattr(getattr(response.raw, "connection", None), "sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))


def _timeouts(deadline: float | None, read_timeout: float) -> tuple[float, float]:
    """(connect, read) timeouts for a request that must end by ``deadline``."""
    if deadline is None:
        return 10.0, read_timeout
    left = max(deadline - time.monotonic(), 0.001)
    return min(10.0, left), min(read_timeout, left)


def _check(deadline: float | None, job_id: int, status: str | None,
           timeout: float | None) -> None:
    """JobTimeout once ``deadline`` has passed."""
    if deadline is not None and time.monotonic() >= deadline:
        raise JobTimeout(f"job {job_id} did not end within the {timeout:g} s the wait "
                         f"allowed (it is {status or 'unfinished'}, and goes on)",
                         job_id=job_id, status=status)


def _pause(seconds: float, deadline: float | None) -> None:
    """Sleep ``seconds``, but not past ``deadline``."""
    if deadline is not None:
        seconds = min(seconds, max(deadline - time.monotonic(), 0.0))
    time.sleep(seconds)
