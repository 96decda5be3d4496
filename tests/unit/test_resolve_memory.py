"""Resolution memoizes per graph, never beyond it: a process that builds a graph per bundle,
per resolved-variables call and per job must not keep them (and their merged variables)."""

from __future__ import annotations

import gc
import tracemalloc
import weakref

from craton.inventory.resolve import GroupGraph, GroupNode
from craton.values import canonical_json


def region_graph(seed: int) -> GroupGraph:
    """A 3-deep tree of 20 groups, each with 10 variables, with every memo filled."""
    nodes = []
    for index in range(20):
        parent = (index - 1) // 3 if index else None
        nodes.append(GroupNode(
            id=seed * 1000 + index, name=f"g{index}",
            variables={f"v{k}": canonical_json(f"{seed}-{index}-{k}" * 5) for k in range(10)},
            parents=() if parent is None else (seed * 1000 + parent,)))
    graph = GroupGraph(nodes)
    for node in nodes:
        graph.merged_groups(frozenset({node.id}))
    return graph


def test_a_thousand_graphs_leave_nothing_behind() -> None:
    """After 1,000 graphs are built, used and dropped, none of them is alive and the memory
    they took is back: what is allocated after the last one is within a few graphs' worth of
    what was allocated after the first."""
    tracemalloc.start()
    try:
        region_graph(0)
        gc.collect()
        after_first, _ = tracemalloc.get_traced_memory()
        one = region_graph(1)
        gc.collect()
        with_one, _ = tracemalloc.get_traced_memory()
        size = with_one - after_first
        probes = [weakref.ref(one)]
        del one
        for seed in range(2, 1001):
            graph = region_graph(seed)
            if seed % 100 == 0:
                probes.append(weakref.ref(graph))
            del graph
        gc.collect()
        after_all, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [probe for probe in probes if probe() is not None] == []
    assert size > 20_000, size  # one graph is sizeable: its loss would show
    assert after_all - after_first < 3 * size, (after_first, after_all, size)
