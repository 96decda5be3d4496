"""Fidelity: random fleets of nasty values and names, and whether every way Craton hands them to
Ansible means to Ansible what the fleet means.

A fleet (:func:`nasty_fleet`) is built through the API. Its reference is Ansible's own view of
the fleet written by hand as one YAML inventory (:func:`write_original`), independent of
Craton's writers and resolver. Then Ansible's view of each output — ``layout=ansible``,
``layout=hosts`` (all the per-host inventories at once) and the ``.json`` (as an inventory
script's output) — and the resolved variables the API shows for each host must equal that
reference: every group's direct hosts and children, every host's variables, types included
(a string "1" is not the integer 1, a float 1.0 is not the integer 1, True is not 1).

Ansible's view is ``ansible-inventory --list``, computed by Ansible's own command class in a
long-lived helper process (tests/ansible_lister.py) so that a fleet costs milliseconds.

Used by tests/integration/test_fidelity.py (a few hundred fleets) and benchmarks/fidelity.py
(as many as asked, with a seed).
"""

from __future__ import annotations

import collections
import dataclasses
import io
import json
import os
import random
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tests.conftest import Client

LISTER = Path(__file__).with_name("ansible_lister.py")
ANSIBLE_ENV = {"ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "0",
               "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1",
               "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "1",
               "ANSIBLE_DEPRECATION_WARNINGS": "0"}
"""What both the real command and the helper run with: an inventory Ansible cannot parse is
an error, not a warning and an empty inventory."""

# --- the generator --------------------------------------------------------------------------

YAML_LOOKALIKES = ["yes", "no", "on", "off", "y", "n", "Yes", "NO", "true", "False", "null",
                   "Null", "~", "", "0x1F", "0o17", "0b101", "1e3", "1_000", "012", "+1", "-0",
                   ".inf", "-.Inf", ".nan", "2001-12-14", "2001-12-14t21:59:43.10-05:00",
                   "12:30:00", "190:20:30", "<<", "=", "1.0", "0.", "1,000"]
SYNTAX_LOOKALIKES = ["!unsafe x", "!!str", "!vault |", "&anchor", "*alias", "- x", ": x",
                     "# x", "x # y", "? x", "| x", "> x", "%TAG", "@x", "`x", "[a, b]", "{a: 1}",
                     "a: b", "'", "''", '"', '""', "\\", "\\n", "\\u0041", "x\\", "--- x",
                     "...", "$ANSIBLE_VAULT;1.1;AES256", "__ansible_unsafe"]
JINJA_LOOKALIKES = ["{{ x }}", "{% raw %}", "{% endraw %}", "{# c #}", "{{", "}}", "{%",
                    "{{ lookup('pipe', 'id') }}", "{{ inventory_hostname }}", "${x}", "%(x)s"]
TEXT_ODDITIES = ["a\nb", "a\tb", "\r\n", "a\rb", " lead", "trail ", "  ", "\n", "caf\u00e9",
                 "cafe\u0301", "\u8ba1\u7b97", "\U0001f600", "a\u2028b", "a\u0085b",
                 "\ufeffbom", "a\x00b", "\x7f", "\u200b", "\ufffe", "\U0010ffff", "\u00a0",
                 "x" * 300, "\\\"'"]
STRINGS = YAML_LOOKALIKES + SYNTAX_LOOKALIKES + JINJA_LOOKALIKES + TEXT_ODDITIES
INTEGERS = [0, 1, -1, 7, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64 + 1, 10**30,
            -(10**40), 12, 1000]
FLOATS = [0.0, -0.0, 1.0, 1.5, 0.1, -2.5, 1e300, -1e-300, 5e-324, 1.7976931348623157e308,
          2.0**53, 1e16, 123456789.123456789, 1e-7, 3.0e10]
ODD_KEYS = ["a.b", "a-b", "caf\u00e9", "cafe\u0301", "\u8ba1\u7b97", 'a"b', "a\\b", '\\"',
            "a b", " x", "x ", "1st", "007", "0", "{{ k }}", "#k", "k:", "- k", "yes", "null",
            "~", "<<", "!k", "&k", "*k", "%k", "@k", "`k", "\U0001f600", "a\u2028b", "_",
            "k" * 255, "True", "None", "a/b", "[0]"]
PLAIN_KEYS = ["alpha", "beta", "gamma", "role", "ansible_host", "ansible_user",
              "ansible_connection", "ansible_port", "ansible_python_interpreter"]
"""Few plain keys, so values set at several levels collide and the merge order decides."""
GROUP_NAMES = ["web", "db", "nova-api", "neutron-l3-agent", "ceph.osd", "1st", "007",
               "caf\u00e9", "\u8ba1\u7b97", "a-b.c_d", "_x", "UPPER", "true", "null", "yes",
               "1e3", "0x1F", "2001-12-14", "g\U0001f600", "\u03a9mega", "a$b", "a'b", "a=b",
               "a#b", "a%b", "a+b", "\u00e9.1", "x~", "a\"b", "a{b}", "a(b)", "a&b",
               "a|b", "a;b", "a<b>", "all-groups"]
HOST_NAMES = ["h-1", "web01.example.com", "10.0.0.1", "2001:db8::1", "fe80::2", "1st-host",
              "caf\u00e9-host", "\u8ba1\u7b971", "on", "no", "null-h", "h\U0001f600",
              "H-upper", "0", "12", "x.y.z", "a$h", "a'h", "_meta", "a\"h", "{{h}}", "h.1e3",
              "127.0.0.1", "::ffff:192.0.2.1", "fe80::1%eth0", "all-hosts", "ungrouped-1",
              "localhost", "localhost.localdomain"]
PRIORITIES = [-5, 0, 1, 2, 3, 10, 10**12, -(10**12), 2**64]


@dataclasses.dataclass
class Fleet:
    """What a fleet is, as API bodies: the region's variables, groups (parents before their
    children) and hosts; and which hosts the bundles select (None: all of them)."""

    region_vars: dict[str, Any]
    groups: list[dict[str, Any]]
    hosts: list[dict[str, Any]]
    selection: list[str] | None = None


def nasty_value(rng: random.Random, depth: int = 0) -> Any:
    """A scalar most of the time; a list or mapping (odd keys included) nesting up to ~10."""
    if depth == 0 and rng.random() < 0.04:
        return deep_value(rng, rng.randint(8, 12))
    roll = rng.random()
    if depth < 10 and roll < (0.25 if depth == 0 else 0.35):
        size = rng.randint(0, 3)
        if rng.random() < 0.5:
            return [nasty_value(rng, depth + 1) for _ in range(size)]
        return {nasty_key(rng): nasty_value(rng, depth + 1) for _ in range(size)}
    kind = rng.random()
    if kind < 0.55:
        return rng.choice(STRINGS) if rng.random() < 0.85 else random_text(rng)
    if kind < 0.72:
        return rng.choice(INTEGERS) if rng.random() < 0.7 else rng.randint(-10**20, 10**20)
    if kind < 0.87:
        return rng.choice(FLOATS) if rng.random() < 0.7 else rng.uniform(-1e6, 1e6)
    if kind < 0.95:
        return rng.random() < 0.5
    return None


def deep_value(rng: random.Random, levels: int) -> Any:
    """Lists and mappings nested ``levels`` deep, a nasty scalar at the bottom."""
    value = nasty_value(rng, depth=10)
    for _ in range(levels):
        value = [value, rng.choice(STRINGS)] if rng.random() < 0.5 else \
            {nasty_key(rng): value}
    return value


def random_text(rng: random.Random) -> str:
    """Characters from every corner Ansible and YAML might treat specially (no lone surrogates:
    Craton refuses text that is not valid Unicode)."""
    pools = ["abc ", ":#-&*!|>'\"%@`{}[],?", "\\\n\t\r", "\u00e9\u8ba1\U0001f600\u2028\u0085",
             "\x00\x01\x1f\x7f\u200b\ufeff"]
    return "".join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(1, 12)))


def nasty_key(rng: random.Random) -> str:
    """A plain key more often than not (an odd one set inline costs Ansible a deprecation
    warning, whose caller lookup is most of the time it takes to read an inventory)."""
    return rng.choice(ODD_KEYS) if rng.random() < 0.3 else rng.choice(PLAIN_KEYS)


def nasty_variables(rng: random.Random, most: int = 4) -> dict[str, Any]:
    """Up to ``most`` variables (fewer when keys repeat)."""
    return {nasty_key(rng): nasty_value(rng) for _ in range(rng.randint(0, most))}


def nasty_fleet(rng: random.Random) -> Fleet:
    """A fleet: a DAG of up to 18 groups (diamonds, sometimes a chain of 5 to 14), priorities,
    1 to 6 hosts in no, some or all groups, host fields, and variables of every kind at every
    level; about a third of the time the bundles select only some of the hosts."""
    names = rng.sample(GROUP_NAMES, rng.randint(0, 8))
    if rng.random() < 0.2:
        names += [f"chain-{index}" for index in range(rng.randint(5, 14 - len(names) // 2))]
    groups = []
    for index, name in enumerate(names):
        if name.startswith("chain-") and name != "chain-0":
            parents = [f"chain-{int(name[6:]) - 1}"]
        else:
            earlier = names[:index]
            parents = rng.sample(earlier, min(len(earlier), rng.choice([0, 0, 1, 1, 2, 3])))
        variables = nasty_variables(rng)
        if rng.random() < 0.4:
            variables["ansible_group_priority"] = rng.choice(PRIORITIES)
        groups.append({"name": name, "parents": parents, "variables": variables})
    hosts = []
    for name in rng.sample(HOST_NAMES, rng.randint(1, 6)):
        roll = rng.random()
        member_of = names if roll < 0.15 else [] if roll < 0.3 else rng.sample(
            names, min(len(names), rng.randint(1, 4)))
        host: dict[str, Any] = {"name": name, "groups": member_of,
                                "variables": nasty_variables(rng)}
        if rng.random() < 0.05:  # a plain variable on a host (and any value goes)
            host["variables"]["ansible_group_priority"] = nasty_value(rng)
        if rng.random() < 0.3:
            host["ip_address"] = rng.choice(["192.0.2.7", "2001:db8::7"])
        if rng.random() < 0.2:
            host["fqdn"] = "node.example.com"
        if rng.random() < 0.2:
            host["ssh_port"] = rng.choice([22, 2222])
        if rng.random() < 0.2:
            host["ssh_user"] = rng.choice(["root", "ops.user"])
        hosts.append(host)
    region_vars = nasty_variables(rng)
    if rng.random() < 0.1:
        region_vars["ansible_group_priority"] = rng.choice(PRIORITIES)
    selection = None
    if len(hosts) > 1 and rng.random() < 0.3:
        selection = sorted(rng.sample([h["name"] for h in hosts], rng.randint(1, len(hosts) - 1)))
    return Fleet(region_vars, groups, hosts, selection)


def fleet_of(seed: int, index: int) -> Fleet:
    """Fleet ``index`` of the run seeded ``seed``: each has its own generator, so any one of a
    run can be built again alone."""
    return nasty_fleet(random.Random(f"{seed}-{index}"))


# --- the reference: the fleet as one YAML inventory -------------------------------------------

FIELD_VARIABLES = (("ansible_host", ("ip_address", "fqdn")), ("ansible_port", ("ssh_port",)),
                   ("ansible_user", ("ssh_user",)))
"""The variables Craton derives from a host's fields (its README's "Inventory bundles"), below
the host's own."""


def host_variables(host: dict[str, Any]) -> dict[str, Any]:
    """What a host's own variables are to Ansible: those derived from its fields, then its
    own (which win)."""
    derived = {}
    for variable, fields in FIELD_VARIABLES:
        for field in fields:
            if host.get(field) is not None:
                derived[variable] = host[field]
                break
    return {**derived, **host["variables"]}


def write_original(fleet: Fleet, directory: Path) -> Path:
    """The fleet as people write a YAML inventory (here in its JSON spelling, which Ansible
    reads as JSON, so nothing is left to YAML): groups without parents under ``all``, a
    group's body under its last parent and its name alone under the others, group variables
    and ``ansible_group_priority`` inline, each host's variables at one of its places.

    A region's ``ansible_group_priority`` is a variable in Craton (its ``all`` group_vars
    file): inline, Ansible would take it as the priority of ``all`` and drop it, so it goes
    to group_vars/all.json, the one file here."""
    bodies: dict[str, dict[str, Any]] = {}
    parents: dict[str, list[str]] = {}
    for group in fleet.groups:
        variables = dict(group["variables"])
        bodies[group["name"]] = {"vars": variables} if variables else {}
        parents[group["name"]] = group["parents"]
    ungrouped: dict[str, Any] = {}
    for host in fleet.hosts:
        variables = host_variables(host) or None
        for index, group in enumerate(host["groups"]):
            bodies[group].setdefault("hosts", {})[host["name"]] = variables if index == 0 \
                else None
        if not host["groups"]:
            ungrouped[host["name"]] = variables
    for name, above in parents.items():
        for parent in above:
            # The body itself, filled in or not yet: a group's own subgroups may come later.
            bodies[parent].setdefault("children", {})[name] = \
                bodies[name] if parent == above[-1] else None
    top: dict[str, Any] = {"children": {name: bodies[name] for name in bodies
                                        if not parents[name]}}
    region_vars = dict(fleet.region_vars)
    priority = region_vars.pop("ansible_group_priority", None)
    if region_vars:
        top["vars"] = region_vars
    if ungrouped:
        top["hosts"] = ungrouped
    directory.mkdir(parents=True)
    (directory / "hosts.yml").write_text(json.dumps({"all": top}, ensure_ascii=False),
                                         encoding="utf-8")
    if priority is not None:
        (directory / "group_vars").mkdir()
        (directory / "group_vars" / "all.json").write_text(
            json.dumps({"ansible_group_priority": priority}))
    return directory


# --- Ansible's view ---------------------------------------------------------------------------

@dataclasses.dataclass
class View:
    """What ``ansible-inventory --list`` shows: each group's (direct hosts, children), sorted,
    and each host's variables as canonical JSON (so types count)."""

    groups: dict[str, tuple[list[str], list[str]]]
    hostvars: dict[str, str]


def canonical(value: Any) -> str:
    """JSON that tells 1 from 1.0 from true from "1", with keys sorted."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def view_of(listing: str) -> View:
    """The :class:`View` of what ``ansible-inventory --list`` wrote."""
    data = json.loads(listing)
    hostvars = data.pop("_meta")["hostvars"]
    groups = {name: (sorted(body.get("hosts", [])), sorted(body.get("children", [])))
              for name, body in data.items()}
    return View(groups, {host: canonical(variables) for host, variables in hostvars.items()})


class Lister:
    """The helper process: ``list(sources)`` is ``ansible-inventory --list -i …`` by Ansible's
    own code. ``submit`` and ``result`` let the caller work while Ansible reads."""

    def __init__(self, log: Path, env: dict[str, str] | None = None) -> None:
        """``env`` (the caller's environment by default) plus :data:`ANSIBLE_ENV`."""
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, str(LISTER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._log, env={**(os.environ if env is None else env), **ANSIBLE_ENV},
            text=True, encoding="utf-8")

    def submit(self, sources: Iterable[Path | str]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps([str(source) for source in sources]) + "\n")
        self.process.stdin.flush()

    def result(self) -> dict[str, Any]:
        """The answer to the oldest request not yet answered."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the Ansible helper ended (exit {self.process.poll()}); "
                               f"see {self._log.name}")
        return json.loads(line)

    def list(self, sources: Iterable[Path | str]) -> dict[str, Any]:
        self.submit(sources)
        return self.result()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)
        self._log.close()


def ansible_inventory_command(sources: Iterable[Path | str]) -> str:
    """The real ``ansible-inventory --list`` (to prove the helper gives the same)."""
    command = [str(Path(sys.executable).with_name("ansible-inventory")), "--list"]
    for source in sources:
        command += ["-i", str(source)]
    done = subprocess.run(command, capture_output=True, text=True, check=True,
                          env={**os.environ, **ANSIBLE_ENV})
    return done.stdout


# --- checking a fleet -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Disagreement:
    """One way an output or the API differs from what the fleet means to Ansible."""

    kind: str
    """Which output (or the API, or the import) and what differs: ``<output>: groups``,
    ``<output>: hostvars``, ``<output>: unloadable``, ``api: resolved``, ``api: refused``,
    ``import: refused``."""
    detail: str


OUTPUTS = ("layout=ansible", "layout=hosts", ".json")


@dataclasses.dataclass
class Built:
    """A fleet as Craton holds it, and the inventory sources of its outputs."""

    region_id: int
    host_ids: dict[str, int]
    original: Path
    sources: dict[str, list[Path]]


def build(client: Client, fleet: Fleet, work: Path) -> Built | list[Disagreement]:
    """Create ``fleet`` through the API, write its reference inventory and extract its
    bundles into ``work`` (a new directory: the helper's Ansible caches what it found by
    path); the disagreements instead when the API refuses part of it."""
    tenant = client.create("/v1/tenants", {"name": f"t-{uuid.uuid4().hex}"})
    region = client.post(f"/v1/tenants/{tenant['id']}/regions",
                         {"name": "r", "variables": fleet.region_vars})
    if region.status_code != 201:
        return [Disagreement("api: refused", f"region: {region.get_json()}")]
    rid = region.get_json()["id"]
    refused = []
    for group in fleet.groups:
        response = client.post(f"/v1/regions/{rid}/groups", group)
        if response.status_code != 201:
            refused.append(Disagreement("api: refused",
                                        f"group {group['name']!r}: {response.get_json()}"))
    response = client.post(f"/v1/regions/{rid}/hosts", fleet.hosts)
    if response.status_code != 201:
        refused.append(Disagreement("api: refused", f"hosts: {response.get_json()}"))
    if refused:
        return refused
    host_ids = {host["name"]: host["id"] for host in response.get_json()["items"]}
    query = "".join(f"&id={host_ids[name]}" for name in fleet.selection or ())
    selected = fleet.selection or sorted(host_ids)

    original = write_original(fleet, work / "original")
    aggregate = extract(client, f"/v1/inventory/{rid}.tgz?layout=ansible{query}",
                        work / "ansible")
    per_host = extract(client, f"/v1/inventory/{rid}.tgz?layout=hosts{query}", work / "hosts")
    document = work / "inventory.json"
    document.write_bytes(client.get(f"/v1/inventory/{rid}.json?{query[1:]}").get_data())
    script = work / "inventory.sh"
    script.write_text(f"#!/bin/sh\nexec cat '{document}'\n")
    script.chmod(0o755)
    sources = {
        "layout=ansible": [aggregate / "inventory"],
        "layout=hosts": [per_host / "hosts" / name / "inventory" for name in selected],
        ".json": [script],
    }
    return Built(rid, host_ids, original, sources)


def extract(client: Client, url: str, target: Path) -> Path:
    response = client.get(url)
    assert response.status_code == 200, (url, response.get_data()[:500])
    with tarfile.open(fileobj=io.BytesIO(response.get_data())) as archive:
        archive.extractall(target, filter="data")
    return target


def expected_views(reference: View, selected: set[str]) -> dict[str, View]:
    """What Ansible must show of each output: the reference with only the selected hosts;
    for layout=hosts — one inventory per host, each holding the groups that hold it — also
    without the groups that then hold no host at any depth."""
    groups = {name: ([h for h in hosts if h in selected], children)
              for name, (hosts, children) in reference.groups.items()}
    groups = _without_empty(groups)
    hostvars = {host: shown for host, shown in reference.hostvars.items() if host in selected}
    whole = View(groups, hostvars)
    return {"layout=ansible": whole, "layout=hosts": View(_hostful(groups), hostvars),
            ".json": whole}


def _without_empty(groups: dict[str, tuple[list[str], list[str]]]
                   ) -> dict[str, tuple[list[str], list[str]]]:
    """As ansible-inventory lists them: a group with neither hosts nor children is left out
    (but stays among its parents' children)."""
    return {name: body for name, body in groups.items() if name == "all" or body[0] or body[1]}


def _hostful(groups: dict[str, tuple[list[str], list[str]]]
             ) -> dict[str, tuple[list[str], list[str]]]:
    """``groups`` without those that hold no host at any depth (and without edges to them)."""
    holding: dict[str, bool] = {}

    def holds(name: str) -> bool:
        if name not in holding:
            holding[name] = False
            hosts, children = groups.get(name, ([], []))
            holding[name] = bool(hosts) | any([holds(child) for child in children])
        return holding[name]

    kept = {name for name in groups if name == "all" or holds(name)}
    return {name: (hosts, [c for c in children if c in kept or c == "ungrouped"])
            for name, (hosts, children) in groups.items() if name in kept}


def compare(output: str, expected: View, shown: View) -> list[Disagreement]:
    """How Ansible's view of ``output`` (``shown``) differs from what it should be."""
    found = []
    if shown.groups != expected.groups:
        names = sorted(set(shown.groups) | set(expected.groups))
        diff = [f"{name}: {expected.groups.get(name)} != {shown.groups.get(name)}"
                for name in names if shown.groups.get(name) != expected.groups.get(name)]
        found.append(Disagreement(f"{output}: groups", "; ".join(diff)[:600]))
    for host in sorted(set(shown.hostvars) | set(expected.hostvars)):
        want, got = expected.hostvars.get(host, "{}"), shown.hostvars.get(host, "{}")
        if want != got:
            found.append(Disagreement(f"{output}: hostvars", _vars_diff(host, want, got)))
    return found


def _vars_diff(host: str, want: str, got: str) -> str:
    wanted, shown = json.loads(want), json.loads(got)
    keys = sorted(key for key in set(wanted) | set(shown)
                  if canonical(wanted.get(key, "<unset>")) != canonical(shown.get(key, "<unset>")))
    parts = [f"{key!r}: meant {canonical(wanted.get(key, '<unset>'))[:120]}, got "
             f"{canonical(shown.get(key, '<unset>'))[:120]}" for key in keys]
    return f"host {host!r}: " + "; ".join(parts)[:600]


def check_fleets(client: Client, listers: Sequence[Lister], fleets: Iterable[tuple[int, Fleet]],
                 work: Path, *, import_every: int = 0
                 ) -> Iterator[tuple[int, Fleet, list[Disagreement]]]:
    """Each fleet with every disagreement between Ansible's view of it and Craton's outputs
    and API; for every ``import_every``-th fleet (none if 0), also of the reference inventory
    imported into a region of its own (POST /v1/regions/{id}/import) and bundled with
    layout=ansible. Pipelined: while
    Ansible reads one fleet's inventories (spread over the helpers, each answering in order),
    the next fleet is built."""
    pending: tuple[int, Fleet, Built, list[str]] | None = None
    for index, fleet in fleets:
        built = build(client, fleet, work / f"fleet-{index}")
        if isinstance(built, list):
            yield index, fleet, built
            continue
        requests = [("original", [built.original]),
                    *((output, built.sources[output]) for output in OUTPUTS)]
        if import_every and index % import_every == 0:
            imported = import_original(client, built.original, work / f"fleet-{index}")
            if isinstance(imported, Disagreement):
                yield index, fleet, [imported]
                continue
            requests.append((IMPORTED, [imported]))
        for lane, (_, sources) in enumerate(requests):
            listers[lane % len(listers)].submit(sources)
        if pending is not None:
            yield pending[0], pending[1], _finish(client, listers, *pending[1:])
        pending = (index, fleet, built, [name for name, _ in requests])
    if pending is not None:
        yield pending[0], pending[1], _finish(client, listers, *pending[1:])


IMPORTED = "import"


def import_original(client: Client, original: Path, work: Path) -> Path | Disagreement:
    """Import the reference inventory into a new region; the inventory of that region's
    layout=ansible bundle, or why the import was refused."""
    tenant = client.create("/v1/tenants", {"name": f"t-{uuid.uuid4().hex}"})
    region = client.create(f"/v1/tenants/{tenant['id']}/regions", {"name": "r"})
    files = {path.relative_to(original).as_posix(): path.read_text(encoding="utf-8")
             for path in sorted(original.rglob("*")) if path.is_file()}
    response = client.post(f"/v1/regions/{region['id']}/import",
                           {"format": "directory", "files": files})
    if response.status_code != 200:
        return Disagreement(f"{IMPORTED}: refused", str(response.get_json())[:600])
    bundle = extract(client, f"/v1/inventory/{region['id']}.tgz?layout=ansible",
                     work / "imported")
    return bundle / "inventory"


def _finish(client: Client, listers: Sequence[Lister], fleet: Fleet, built: Built,
            requests: list[str]) -> list[Disagreement]:
    """Compare what Ansible answers for ``built`` (the oldest answers not yet read)."""
    resolved = {}
    for name, host_id in built.host_ids.items():
        response = client.get(f"/v1/hosts/{host_id}/variables?resolved=true")
        assert response.status_code == 200, response.get_json()
        if response.get_json()["variables"]:
            resolved[name] = canonical(response.get_json()["variables"])
    answers = {name: listers[lane % len(listers)].result()
               for lane, name in enumerate(requests)}
    original = answers.pop("original")
    if "error" in original:
        raise AssertionError(f"Ansible cannot read the reference inventory: {original['error']}")
    reference = view_of(original["output"])
    expected = expected_views(reference, set(fleet.selection or built.host_ids))
    expected[IMPORTED] = View(_without_empty(reference.groups), reference.hostvars)
    found = []
    for output, answer in answers.items():
        if "error" in answer:
            found.append(Disagreement(f"{output}: unloadable", answer["error"][:600]))
        else:
            found += compare(output, expected[output], view_of(answer["output"]))
    for host in sorted(set(resolved) | set(reference.hostvars)):
        want, got = reference.hostvars.get(host, "{}"), resolved.get(host, "{}")
        if want != got:
            found.append(Disagreement("api: resolved", _vars_diff(host, want, got)))
    return found


def summarize(disagreements: Iterable[Disagreement]) -> dict[str, int]:
    return dict(sorted(collections.Counter(d.kind for d in disagreements).items()))
