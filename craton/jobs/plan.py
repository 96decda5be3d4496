"""Who waits for whom: a job's plan, from the groups' ``depends_on``, and the waves it runs in.

A host of a group that depends on group D starts only when every selected host of D has
finished — and only if they all succeeded; otherwise it is skipped, saying which did not. (A
host in D itself waits for the others of D.) The plan is pinned when the job is submitted, so
a resumed run waits exactly as the first one did.

The default layout runs the plan in waves: wave 0 holds the hosts that wait for nobody, wave
k the hosts whose last awaited host is in wave k-1; each wave is one ansible-playbook run over
its hosts, up to ``forks`` at once. What that gives up against one run per host: a host waits
for its whole previous wave, not only for the hosts it depends on, and a slow host holds up
the next wave.
"""

from __future__ import annotations

import graphlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from craton.context import RequestContext
from craton.db.models import HostGroup, HostRunStatus
from craton.db.util import chunked
from craton.errors import Conflict
from craton.inventory.graph import describe_cycle, find_cycle
from craton.inventory.snapshot import load_snapshot

Plan = dict[str, Any]
"""``{"gates": {group: [its selected hosts]}, "waits": {host: {"gates": [groups],
"hosts": [hosts]}}}`` — JSON, stored with the job."""


def make_plan(session: Session, ctx: RequestContext, region_id: int,
              names: Mapping[int, str]) -> Plan:
    """Which hosts wait for which (``names``: the selected hosts, id → name). Groups are a
    DAG, yet hosts in several groups could still wait for each other: that is refused."""
    graph = load_snapshot(session, ctx, region_id, fetcher=None).graph
    host_ids = list(names)
    direct: dict[int, set[int]] = defaultdict(set)
    for chunk in chunked(host_ids):
        for host_id, group_id in session.execute(
                select(HostGroup.host_id, HostGroup.group_id)
                .where(HostGroup.host_id.in_(chunk))):
            direct[host_id].add(group_id)
    effective = {h: set().union(*(graph.ancestors(g) for g in direct[h])) if direct[h] else set()
                 for h in host_ids}
    members: dict[int, list[str]] = defaultdict(list)
    for host_id in sorted(host_ids, key=lambda h: names[h]):
        for group_id in effective[host_id]:
            members[group_id].append(names[host_id])
    gates: dict[str, list[str]] = {}
    waits: dict[str, dict[str, list[str]]] = {}
    for host_id in host_ids:
        host = names[host_id]
        needed = sorted({d for g in effective[host_id] for d in graph.nodes[g].depends_on
                         if members.get(d)}, key=lambda g: graph.nodes[g].name)
        entry: dict[str, list[str]] = {"gates": [], "hosts": []}
        for group_id in needed:
            group = graph.nodes[group_id].name
            if host in members[group_id]:
                entry["hosts"] += [h for h in members[group_id] if h != host]
            else:
                gates[group] = members[group_id]
                entry["gates"].append(group)
        entry["hosts"] = sorted(set(entry["hosts"]))
        if entry["gates"] or entry["hosts"]:
            waits[host] = entry
    edges = [(f"gate:{g}", f"host:{h}") for g, hosts in gates.items() for h in hosts]
    edges += [(f"host:{host}", f"gate:{g}") for host, e in waits.items() for g in e["gates"]]
    edges += [(f"host:{host}", f"host:{h}") for host, e in waits.items() for h in e["hosts"]]
    cycle = find_cycle(edges)
    if cycle is not None:
        path = describe_cycle(cycle, {})
        raise Conflict(f"these hosts would wait for each other through depends_on: {path}",
                       fields={"filters": f"depends_on cycle between hosts: {path}"})
    return {"gates": gates, "waits": waits}


def awaited(plan: Plan, host: str) -> set[str]:
    """The hosts ``host`` waits for."""
    entry = plan["waits"].get(host, {})
    found = set(entry.get("hosts", []))
    for group in entry.get("gates", []):
        found.update(plan["gates"][group])
    return found


def waves(plan: Plan, hosts: Sequence[str]) -> list[list[str]]:
    """``hosts`` in waves: each host one wave after the last of the hosts it waits for."""
    wanted = set(hosts)
    sorter = graphlib.TopologicalSorter({host: awaited(plan, host) & wanted for host in wanted})
    sorter.prepare()  # a stored plan waits in no circle: submission refused those
    found: list[list[str]] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        found.append(ready)
        sorter.done(*ready)
    return found


def blocked_by(plan: Plan, host: str, statuses: Mapping[str, HostRunStatus]) -> str | None:
    """Why ``host`` must not run, given its job's hosts' statuses: the hosts it waits for that
    did not succeed (by group), or None."""
    entry = plan["waits"].get(host, {})
    reasons = []
    for group in entry.get("gates", []):
        failed = [h for h in plan["gates"][group] if not _succeeded(statuses.get(h))]
        if failed:
            shown = ", ".join(failed[:5]) + (" …" if len(failed) > 5 else "")
            reasons.append(f"{shown} in group {group} did not succeed")
    reasons += [f"{other} did not succeed" for other in entry.get("hosts", [])
                if not _succeeded(statuses.get(other))]
    return "waited for depends_on: " + "; ".join(reasons) if reasons else None


def _succeeded(status: HostRunStatus | None) -> bool:
    return status is not None and status.succeeded
