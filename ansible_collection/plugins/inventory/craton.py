# Copyright: Craton contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Craton's inventory plugin: a region, or a selection of its hosts, read from the server's
``layout=ansible`` bundle — the archive whose ``inventory/`` directory ``ansible-playbook -i``
runs as it is — in one request, and revalidated with the bundle's ETag.

Nothing here but ansible-core (and the PyYAML it depends on): the plugin speaks HTTP through
``ansible.module_utils.urls`` and reads the archive with the standard library.
"""

from __future__ import annotations

import atexit
import base64
import gzip
import io
import json
import os
import shutil
import tarfile
import tempfile
import typing as t
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode

import yaml
from ansible.errors import AnsibleError, AnsibleParserError
from ansible.inventory.helpers import get_group_vars
from ansible.module_utils.urls import open_url
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.template import trust_as_template
from ansible.utils.vars import combine_vars

try:
    from yaml import CSafeLoader as _YamlLoader
except ImportError:  # PyYAML without libyaml
    from yaml import SafeLoader as _YamlLoader  # type: ignore[assignment]

DOCUMENTATION = r"""
name: craton
short_description: A Craton region (or a selection of its hosts) as an inventory source
version_added: 0.1.0
description:
  - Reads a region's C(layout=ansible) bundle (C(GET /v1/inventory/<region>.tgz)) in one request
    and gives Ansible what the bundle's C(inventory/) directory gives it - the region's whole group
    tree, the group and host variables, group priorities - without writing it to disk.
  - A host's SSH key secret becomes a private key file (mode 0600, in a private temporary
    directory removed when the Ansible command exits) that C(ansible_ssh_private_key_file) names;
    the key itself is never a variable. Other secrets are not handed over.
  - With O(cache) on, the bundle's ETag is kept with the inventory and sent back as
    C(If-None-Match), so an unchanged selection costs one 304 and nothing is read again.
  - Values are trusted as templates, as Ansible trusts the same values in the bundle's files.
  - The configuration file must be named C(craton.yml) or C(craton.yaml), or end in
    C(.craton.yml) or C(.craton.yaml).
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: The name of this plugin.
    required: true
    choices: ['craton.fleet.craton']
  url:
    description:
      - Craton's address, for example V(https://craton.example.com:7780) (a trailing C(/v1) is
        accepted too).
    type: str
    required: true
    env:
      - name: CRATON_URL
  api_key:
    description:
      - "An API key, sent as C(Authorization: Bearer <key>). Leave it unset for a server under
        C(noauth), which needs none."
    type: str
    env:
      - name: CRATON_API_KEY
  region:
    description: The id of the region.
    type: int
    required: true
  host_ids:
    description: Only these hosts (their ids).
    type: list
    elements: int
    default: []
  name:
    description: Only hosts with this name, or matching this glob (C(*) and C(?)).
    type: str
  group:
    description: Only members of this group or of any of its subgroups.
    type: str
  var:
    description:
      - Only hosts whose own variable equals a value, each written V(key:value) (the value as
        JSON or as text), or set at all, written V(key). All must match.
    type: list
    elements: str
    default: []
  state:
    description: Only hosts in one of these lifecycle states.
    type: list
    elements: str
    default: []
  ip_address:
    description: Only the host with this address.
    type: str
  reachable:
    description: Only hosts that the last job could (V(true)) or could not (V(false)) reach.
    type: bool
  validate_certs:
    description: Whether to check the server's TLS certificate.
    type: bool
    default: true
    env:
      - name: CRATON_VALIDATE_CERTS
  ca_path:
    description: A file of CA certificates to check the server's certificate against.
    type: path
    env:
      - name: CRATON_CA_PATH
  timeout:
    description: Seconds to wait for the server.
    type: int
    default: 60
"""

EXAMPLES = r"""
# craton.yml: every host of region 2, from a server under noauth
plugin: craton.fleet.craton
url: http://127.0.0.1:7780
region: 2

# prod.craton.yml: rack r7's compute hosts, grouped by role; the URL and API key come from
# CRATON_URL and CRATON_API_KEY. Kept in a cache that the ETag keeps current: a run
# whose selection has not changed costs one 304.
plugin: craton.fleet.craton
region: 2
group: compute
var: ["rack:r7"]
keyed_groups:
  - key: role
    prefix: role
compose:
  role_label: role | default('unassigned') | upper
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/craton-inventory
cache_timeout: 0
"""

BUNDLE_FORMAT = 1
"""The bundle format this plugin reads (the ``craton.bundle_format`` of its manifest)."""
CACHE_FORMAT = 1
"""Moves on whenever what the plugin keeps in the cache changes shape."""
KEY_FILE_VAR = "ansible_ssh_private_key_file"
SECRETS_IN_BUNDLE = "{{ inventory_dir }}/../secrets/"
"""How the bundle names a host's key file, relative to its inventory directory."""
GROUP_VARS = "inventory/group_vars/"
HOST_VARS = "inventory/host_vars/"

Inventory = dict[str, t.Any]
"""What a bundle holds, as the plugin keeps it (and caches it): ``tree`` (hosts.yml as read),
``group_vars`` (each group's variables, its files merged), ``host_vars``, and ``keys``
(host → its SSH key, base64)."""


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "craton.fleet.craton"
    trusted_by_default = True
    """The bundle's files are trusted as templates when Ansible reads them from disk; the
    same values read through this plugin are too (``ansible-playbook`` means the same)."""

    def verify_file(self, path: str) -> bool:
        return super().verify_file(path) and os.path.basename(path).endswith(
            ("craton.yml", "craton.yaml"))

    def parse(self, inventory: t.Any, loader: t.Any, path: str, cache: bool = True) -> None:
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        url = self._bundle_url()
        cache_key = self.get_cache_key(path)
        caching = self.get_option("cache")
        kept = None
        if caching and cache:
            try:
                kept = self._cache[cache_key]
            except KeyError:
                kept = None
            if not (isinstance(kept, dict) and kept.get("format") == CACHE_FORMAT
                    and kept.get("url") == url and kept.get("etag")):
                kept = None
        fetched = self._fetch(url, kept["etag"] if kept else None)
        if fetched is not None and caching:
            self._cache[cache_key] = fetched
        self._populate(fetched if fetched is not None else kept)

    # --- the request ----------------------------------------------------------------------

    def _bundle_url(self) -> str:
        base = self.get_option("url")
        if not base:
            raise AnsibleParserError("craton: url is not set (nor CRATON_URL)")
        base = base.rstrip("/")
        if base.endswith("/v1"):
            base = base[:-3]
        query: list[tuple[str, t.Any]] = [("layout", "ansible")]
        query += [("id", host_id) for host_id in self.get_option("host_ids")]
        for option in ("name", "group", "ip_address"):
            if self.get_option(option) is not None:
                query.append((option, self.get_option(option)))
        query += [("var", condition) for condition in self.get_option("var")]
        query += [("state", state) for state in self.get_option("state")]
        if self.get_option("reachable") is not None:
            query.append(("reachable", "true" if self.get_option("reachable") else "false"))
        return f"{base}/v1/inventory/{self.get_option('region')}.tgz?{urlencode(query)}"

    def _fetch(self, url: str, etag: str | None) -> Inventory | None:
        """The bundle at ``url`` as the plugin keeps it, or None when it is still ``etag``."""
        headers = {"Accept": "application/gzip"}
        if self.get_option("api_key"):
            headers["Authorization"] = f"Bearer {self.get_option('api_key')}"
        if etag:
            headers["If-None-Match"] = etag
        try:
            response = open_url(
                url, headers=headers, timeout=self.get_option("timeout"),
                validate_certs=self.get_option("validate_certs"),
                ca_path=self.get_option("ca_path"), http_agent="craton.fleet",
                unredirected_headers=["Authorization"], use_netrc=False)
            body = response.read()
        except HTTPError as error:
            if error.code == 304 and etag:
                return None
            raise AnsibleError(_describe(url, error)) from None
        except (URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise AnsibleError(f"craton: GET {url}: {reason}") from None
        read = read_bundle(body, url)
        return {"format": CACHE_FORMAT, "url": url, "etag": response.headers.get("ETag"),
                **read}

    # --- the inventory --------------------------------------------------------------------

    def _populate(self, data: Inventory) -> None:
        """Groups and hosts as Ansible's yaml plugin makes them of the bundle's hosts.yml (in
        the same order, so listings are the same), then the variables of its vars files.

        Those variables are stored as Ansible's host_group_vars plugin keeps what it reads
        from the same files — as they are, every string trusted as a template — rather than
        through ``set_variable``, which an inventory source's own variables go through: that
        would warn of every key Ansible finds odd (Craton keeps ``a.b`` and the like, as vars
        files may), make a group's ``ansible_group_priority`` its priority rather than the
        ordinary variable it is in a vars file, and cost several times as much (the visitor
        behind it copies every value and tags every string with where it came from)."""
        added: dict[str, None] = {}
        for name, body in data["tree"].items():
            self._add_group(name, body, added)
        groups, hosts = self.inventory.groups, self.inventory.hosts
        unknown = [name for name in data["group_vars"] if name not in groups] + \
            [name for name in data["host_vars"] if name not in added]
        if unknown:
            raise AnsibleError(f"craton: the bundle has variables of {unknown[:5]}, which its "
                               f"hosts.yml does not name")
        for name, variables in data["group_vars"].items():
            groups[name].vars.update(_trusted(variables))
        key_files = _KeyFiles() if data["keys"] else None
        for name, variables in data["host_vars"].items():
            key = data["keys"].get(name)
            if key is not None and key_files is not None:
                variables = {**variables, KEY_FILE_VAR: key_files.write(base64.b64decode(key))}
            hosts[name].vars.update(_trusted(variables))
        self._construct(list(added))

    def _add_group(self, name: str, body: t.Any, added: dict[str, None]) -> str:
        """What ansible.builtin.yaml's ``_parse_group`` does with the group, without recursing
        (a long chain of groups nests as deep); the hosts it adds are added to ``added``."""
        inventory = self.inventory
        root = inventory.add_group(name)
        stack: list[tuple[str, t.Iterator[tuple[str, t.Any]], str | None]] = []

        def enter(group: str, data: t.Any, parent: str | None) -> None:
            steps: list[tuple[str, t.Any]] = []
            if isinstance(data, dict):
                for section, items in data.items():
                    if section in ("vars", "children", "hosts") and isinstance(items, dict):
                        steps += [(section, item) for item in items.items()]
            stack.append((group, iter(steps), parent))

        enter(root, body, None)
        while stack:
            group, steps, parent = stack[-1]
            step = next(steps, None)
            if step is None:
                stack.pop()
                if parent is not None:
                    inventory.add_child(parent, group)
                continue
            section, (item, value) = step
            if section == "vars":
                inventory.set_variable(group, item, value)
            elif section == "children":
                enter(inventory.add_group(item), value, group)
            else:
                hosts, port = self._expand_hostpattern(item)
                for host in hosts:
                    added[inventory.add_host(host, group=group, port=port)] = None
        return root

    def _construct(self, names: list[str]) -> None:
        """compose, groups and keyed_groups for the hosts ``names``, over each one's variables
        as Ansible merges them (its groups' by depth and priority, then its own)."""
        compose = self.get_option("compose")
        groups = self.get_option("groups")
        keyed_groups = self.get_option("keyed_groups")
        if not (compose or groups or keyed_groups):
            return
        strict = self.get_option("strict")
        hosts = self.inventory.hosts
        for name in names:
            host = hosts[name]
            variables = combine_vars(get_group_vars(host.get_groups()), host.get_vars())
            self._set_composite_vars(compose, variables, name, strict=strict)
            variables = combine_vars(get_group_vars(host.get_groups()), host.get_vars())
            self._add_host_to_composed_groups(groups, variables, name, strict=strict,
                                              fetch_hostvars=False)
            self._add_host_to_keyed_groups(keyed_groups, variables, name, strict=strict,
                                           fetch_hostvars=False)


def read_bundle(body: bytes, url: str) -> Inventory:
    """The inventory in a ``layout=ansible`` bundle: hosts.yml, every group's vars files
    merged as Ansible's host_group_vars merges them (in the order of their names, later files
    winning), the host vars, and each host's SSH key when its
    ``ansible_ssh_private_key_file`` names it."""
    tree: t.Any = None
    manifest: t.Any = None
    group_files: dict[str, list[tuple[str, dict[str, t.Any]]]] = {}
    host_vars: dict[str, dict[str, t.Any]] = {}
    secrets: dict[str, bytes] = {}
    try:
        # Unzipped at once (in C), then read as a plain tar: twice as fast as tarfile's gzip.
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(body)), mode="r:") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                path = member.name
                content = archive.extractfile(member).read()  # type: ignore[union-attr]
                if path.startswith(HOST_VARS) and path.endswith(".json"):
                    host_vars[path[len(HOST_VARS):-5]] = json.loads(content)
                elif path.startswith(GROUP_VARS):
                    relative = path[len(GROUP_VARS):]
                    group = relative.split("/", 1)[0] if "/" in relative else relative[:-5]
                    group_files.setdefault(group, []).append((path, json.loads(content)))
                elif path == "inventory/hosts.yml":
                    tree = yaml.load(content, Loader=_YamlLoader)  # a safe loader (C or Python)
                elif path.startswith("secrets/"):
                    secrets[path[len("secrets/"):]] = content
                elif path == "manifest.json":
                    manifest = json.loads(content)
    except (tarfile.TarError, OSError, EOFError, ValueError, yaml.YAMLError) as error:
        raise AnsibleError(f"craton: GET {url}: not a readable bundle: {error}") from None
    written = (manifest or {}).get("craton", {}).get("bundle_format")
    if written != BUNDLE_FORMAT:
        raise AnsibleError(f"craton: GET {url}: the bundle is format {written}; this plugin "
                           f"reads format {BUNDLE_FORMAT} (upgrade the craton.fleet collection)")
    if not isinstance(tree, dict):
        raise AnsibleError(f"craton: GET {url}: the bundle has no inventory/hosts.yml")
    group_vars: dict[str, dict[str, t.Any]] = {}
    for group, files in group_files.items():
        merged: dict[str, t.Any] = {}
        for _, variables in sorted(files, key=lambda file: file[0]):
            merged.update(variables)
        group_vars[group] = merged
    keys: dict[str, str] = {}
    for host, variables in host_vars.items():
        named = variables.get(KEY_FILE_VAR)
        prefix = f"{SECRETS_IN_BUNDLE}{host}/"
        if isinstance(named, str) and named.startswith(prefix):
            content = secrets.get(f"{host}/{named[len(prefix):]}")
            if content is not None:
                keys[host] = base64.b64encode(content).decode()
    return {"tree": tree, "group_vars": group_vars, "host_vars": host_vars, "keys": keys}


def _describe(url: str, error: HTTPError) -> str:
    """An HTTP error as the server explained it (Craton's error body names the field and the
    reason, and the request's id), else as HTTP names it."""
    detail = f": {error.reason}"
    try:
        body = json.loads(error.read() or b"{}")
    except (ValueError, OSError):
        body = None
    explained = body.get("error") if isinstance(body, dict) else None
    if isinstance(explained, dict) and explained.get("message"):
        detail = f": {explained['message']}"
        if explained.get("request_id"):
            detail += f" (request {explained['request_id']})"
    return f"craton: GET {url} answered {error.code}{detail}"


def _trusted(value: t.Any) -> t.Any:
    """``value`` with every string in it trusted as a template, as a vars file's are."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {key: _trusted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_trusted(item) for item in value]
    return value


class _KeyFiles:
    """SSH keys as files only this user can read, in a directory of their own that goes when
    the process that made it exits (Ansible's workers, forked from it, leave it alone)."""

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="craton-keys-")
        self.count = 0
        owner = os.getpid()
        directory = self.directory

        def remove() -> None:
            if os.getpid() == owner:
                shutil.rmtree(directory, ignore_errors=True)

        atexit.register(remove)

    def write(self, content: bytes) -> str:
        self.count += 1
        path = os.path.join(self.directory, f"key-{self.count}")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
        return path
