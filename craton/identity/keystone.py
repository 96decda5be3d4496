"""Keystone (``[api] auth_strategy = keystone``): keystonemiddleware's auth_token checks each
request's token against Keystone (caching what it learns) and leaves the identity in the
request's headers; this module configures it from Craton's settings and turns a Keystone
project into the Craton tenant that records its id.

The middleware runs with ``delay_auth_decision``: it never answers a request itself, so the web
pages and the OpenAPI document stay public and every refusal has Craton's error shape.
"""

from __future__ import annotations

import io
import logging
import threading
from typing import Any

from cachetools import TTLCache
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from craton.config import KEYSTONE_AUTHTOKEN, ConfigError, KeystoneSettings, Settings
from craton.db.models import NAME_LENGTH, Tenant
from craton.db.session import Database
from craton.errors import Conflict
from craton.names import tenant_name_problem

LOG = logging.getLogger(__name__)

FORCED = {"delay_auth_decision": "true"}
"""Options Craton sets whatever the file says: the middleware passes every request on, marked
Confirmed or Invalid (``X-Identity-Status``), and Craton decides."""
DEFAULTS = {"include_service_catalog": "false"}
"""Craton's defaults where the file says nothing: Craton never reads the token's service
catalog, which auth_token would otherwise serialize into a header on every request."""

PLUGIN_OPTIONS_NOTE = """\

# The service user auth_token checks tokens with, as the keystoneauth1 plugin that
# auth_type names reads them. For auth_type = password:
#auth_url = http://keystone.example.com/v3
#username = craton
#password = <the service user's password>
#project_name = service
#user_domain_name = Default
#project_domain_name = Default
#
# Craton always runs auth_token with delay_auth_decision = true (refusals come from Craton,
# with its error shape) and reads the identity it validated. include_service_catalog
# defaults to false here (Craton does not use the catalog).
"""


def middleware_config(settings: Settings) -> Any:
    """An oslo.config object holding ``[keystone_authtoken]`` for auth_token, with the options
    of the auth plugin it names; an unknown option or a bad value is a ``ConfigError`` naming
    it (a typo must not leave a default in force)."""
    from keystoneauth1 import exceptions as ksa_exceptions
    from keystoneauth1 import loading
    from keystonemiddleware import auth_token
    from oslo_config import cfg

    conf = cfg.ConfigOpts()
    conf([], project="craton", default_config_files=[], default_config_dirs=[])
    for group, opts in auth_token.list_opts():
        conf.register_opts(opts, group=group)
    options = {**DEFAULTS, **dict(settings.keystone_authtoken), **FORCED}
    auth_type = options.get("auth_type")
    if auth_type:
        try:
            plugin = loading.get_plugin_loader(auth_type)
        except ksa_exceptions.NoMatchingPlugin:
            raise ConfigError(f"[{KEYSTONE_AUTHTOKEN}] auth_type: no keystoneauth1 plugin "
                              f"{auth_type!r}") from None
        conf.register_opts(loading.get_auth_plugin_conf_options(plugin),
                           group=KEYSTONE_AUTHTOKEN)
    for name, value in options.items():
        try:
            conf.set_override(name, value, group=KEYSTONE_AUTHTOKEN)
        except cfg.NoSuchOptError:
            raise ConfigError(f"[{KEYSTONE_AUTHTOKEN}]: unknown option {name}") from None
        except ValueError as error:
            raise ConfigError(f"[{KEYSTONE_AUTHTOKEN}] {name}: {error}") from None
    return conf


def wrap(app: Any, settings: Settings) -> Any:
    """``app`` behind auth_token, configured from ``[keystone_authtoken]``."""
    from keystonemiddleware import auth_token

    return auth_token.AuthProtocol(app, {"oslo_config_config": middleware_config(settings)})


def challenge(settings: Settings) -> str:
    """The ``WWW-Authenticate`` of a 401: where to get a token, as auth_token itself says it."""
    uri = dict(settings.keystone_authtoken).get("www_authenticate_uri", "")
    return f'Keystone uri="{uri}"'


def authtoken_sample() -> str:
    """``[keystone_authtoken]`` as oslo-config-generator documents keystonemiddleware's options,
    every one at its default, commented out."""
    from oslo_config import cfg, generator

    conf = cfg.ConfigOpts()
    generator.register_cli_opts(conf)
    conf(["--namespace", "keystonemiddleware.auth_token", "--wrap-width", "78"],
         project="craton", default_config_files=[], default_config_dirs=[])
    out = io.StringIO()
    generator.generate(conf, output_file=out)
    text = out.getvalue()
    section = text[text.index(f"[{KEYSTONE_AUTHTOKEN}]"):]
    return section.rstrip("\n") + "\n" + PLUGIN_OPTIONS_NOTE


PROJECT_CACHE_SECONDS = 10
"""How long a process reuses a project's tenant: linking a project to another tenant, or
deleting its tenant, shows within this time."""


class ProjectTenants:
    """Keystone project id → tenant id, read from the database and kept for
    ``PROJECT_CACHE_SECONDS`` (an indexed read costs as much as auth_token's whole check of a
    cached token). Only found tenants are kept, so a tenant just made for a project serves its
    next request."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._known: TTLCache[str, int] = TTLCache(maxsize=100_000, ttl=PROJECT_CACHE_SECONDS)
        self._lock = threading.Lock()

    def get(self, project_id: str) -> int | None:
        with self._lock:
            tenant_id = self._known.get(project_id)
        if tenant_id is None:
            tenant_id = tenant_of_project(self.database, project_id)
            if tenant_id is not None:
                with self._lock:
                    self._known[project_id] = tenant_id
        return tenant_id


def tenant_of_project(database: Database, project_id: str) -> int | None:
    """The id of the tenant that records Keystone project ``project_id`` (one indexed read)."""
    with database.connection(write=False) as connection:
        return connection.scalar(
            select(Tenant.id).where(Tenant.keystone_project_id == project_id))


def create_tenant_for_project(database: Database, project_id: str, project_name: str) -> int:
    """Make the tenant of a project on its first use (``[keystone] auto_create_tenants``),
    named after the project — or, when that name is taken or not a tenant name, after the
    project and its id. Two first requests at once make one tenant."""
    names = [project_name, f"{project_name} ({project_id})", f"keystone-{project_id}"]
    name = next(candidate for candidate in names
                if len(candidate) <= NAME_LENGTH and tenant_name_problem(candidate) is None)
    for attempt in (name, f"{name} ({project_id})"):
        try:
            with database.transaction() as session:
                tenant = Tenant(name=attempt, keystone_project_id=project_id,
                                description=f"Keystone project {project_name} ({project_id})")
                session.add(tenant)
                session.flush()
                LOG.info("created tenant %s %r for Keystone project %s", tenant.id, attempt,
                         project_id)
                return tenant.id
        except IntegrityError:
            existing = tenant_of_project(database, project_id)
            if existing is not None:
                return existing
    raise Conflict(f"no free tenant name for Keystone project {project_id}")


def craton_roles(settings: KeystoneSettings, keystone_roles: frozenset[str]) -> frozenset[str]:
    """The Craton roles a token's Keystone roles on its project give (``[keystone] role_map``)."""
    mapping = settings.roles
    return frozenset(mapping[role] for role in keystone_roles if role in mapping)
