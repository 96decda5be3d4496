"""The entry point: :class:`Client`, built from a URL and credentials."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cratonclient._http import Transport
from cratonclient.managers import (
    ApiKeys,
    Groups,
    Hosts,
    Jobs,
    References,
    Regions,
    Secrets,
    Tenants,
)

if TYPE_CHECKING:
    from keystoneauth1.session import Session as KeystoneSession

    from cratonclient.bundles import Inventory


class Client:
    """One Craton API, and a manager per collection (``client.hosts.list(...)``).

    Credentials, one of: ``api_key`` (a key made by ``craton-manage apikey create`` or
    ``POST /v1/tenants/{id}/apikeys``); ``session``, a keystoneauth1 Session (with ``url``
    omitted, the endpoint comes from its catalog under ``service_type``); or none, for a server
    under ``noauth`` (``tenant`` and ``roles`` then say whom to act as).

    ``verify`` is True, False or a CA bundle's path; ``cert`` a client certificate (a path,
    or (cert, key)). ``timeout`` is seconds, or (connect, read). Idempotent requests are
    retried ``retries`` times with exponential back-off (``backoff`` * 2**n seconds) on
    connection errors and 429/502/503/504, honouring Retry-After.
    """

    def __init__(self, url: str | None = None, api_key: str | None = None, *,
                 session: KeystoneSession | None = None, service_type: str = "craton",
                 interface: str = "public", region_name: str | None = None,
                 tenant: int | str | None = None, roles: str | None = None,
                 verify: bool | str = True, cert: str | tuple[str, str] | None = None,
                 timeout: float | tuple[float, float] = (10.0, 60.0), retries: int = 3,
                 backoff: float = 0.5) -> None:
        self.transport = Transport(url, api_key=api_key, session=session,
                                   service_type=service_type, interface=interface,
                                   region_name=region_name, tenant=tenant, roles=roles,
                                   verify=verify, cert=cert, timeout=timeout, retries=retries,
                                   backoff=backoff)
        self.tenants = Tenants(self)
        self.regions = Regions(self)
        self.groups = Groups(self)
        self.hosts = Hosts(self)
        self.secrets = Secrets(self)
        self.references = References(self)
        self.apikeys = ApiKeys(self)
        self.jobs = Jobs(self)
        self._inventory: Inventory | None = None

    @property
    def inventory(self) -> Inventory:
        """Bundles: download and extract (imported on first use: tarfile and zipfile are not
        needed by most commands)."""
        if self._inventory is None:
            from cratonclient.bundles import Inventory

            self._inventory = Inventory(self)
        return self._inventory

    @property
    def url(self) -> str:
        return self.transport.url

    @classmethod
    def from_cloud(cls, cloud: str | None = None, url: str | None = None,
                   **options: Any) -> Client:
        """A client authenticated by Keystone as ``clouds.yaml`` describes ``cloud`` (or, with
        no name, as the ``OS_*`` environment variables do), the way every OpenStack tool reads
        them. The endpoint: ``url``, else the cloud's ``craton_endpoint_override``, else the
        service catalog."""
        import warnings

        import openstack.config
        from keystoneauth1.session import Session

        with warnings.catch_warnings():
            # openstacksdk announces the end of its InfluxDB metrics, which Craton never uses.
            warnings.filterwarnings("ignore", message="Support for InfluxDB")
            region = openstack.config.OpenStackConfig().get_one(cloud=cloud)
        verify, cert = region.get_requests_verify_args()
        session = Session(auth=region.get_auth(), verify=verify, cert=cert)
        endpoint = url or region.config.get("craton_endpoint_override")
        return cls(endpoint, session=session, region_name=region.region_name,
                   interface=region.config.get("interface") or "public", **options)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None,
                         **options: Any) -> Client:
        """A client as the environment says: ``CRATON_URL`` with ``CRATON_API_KEY`` (or no
        key, for ``noauth``; ``CRATON_TENANT`` to act inside a tenant there), else Keystone
        through ``OS_CLOUD`` or ``OS_AUTH_URL`` and the other ``OS_*`` variables."""
        env = os.environ if environ is None else environ
        url = env.get("CRATON_URL") or None
        key = env.get("CRATON_API_KEY") or None
        if key is None and (env.get("OS_CLOUD") or env.get("OS_AUTH_URL")):
            return cls.from_cloud(env.get("OS_CLOUD") or None, url=url, **options)
        if url is None:
            raise ValueError("set CRATON_URL (and CRATON_API_KEY), or OS_CLOUD")
        if env.get("CRATON_TENANT"):
            options.setdefault("tenant", env["CRATON_TENANT"])
        return cls(url, key, **options)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Client {self.url}>"
