"""The group graphs of a region (parent → child, and depends_on) must stay acyclic."""

from __future__ import annotations

import graphlib
from collections import defaultdict
from collections.abc import Iterable


def find_cycle(edges: Iterable[tuple[int, int]]) -> list[int] | None:
    """A cycle among directed ``edges`` (from, to) as a closed path ``[a, b, …, a]``, or None."""
    predecessors: dict[int, set[int]] = defaultdict(set)
    for source, target in edges:
        predecessors[target].add(source)
        predecessors.setdefault(source, set())
    try:
        graphlib.TopologicalSorter(predecessors).prepare()
    except graphlib.CycleError as error:
        # graphlib lists the cycle so that each node precedes the next: along our edges.
        return list(error.args[1])
    return None


def describe_cycle(cycle: list[int], names: dict[int, str]) -> str:
    return " → ".join(names.get(node, str(node)) for node in cycle)
