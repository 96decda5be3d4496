"""Group graphs must stay acyclic: find_cycle says whether a set of edges has a cycle and, when
it has, shows one as a closed path along those edges (what the 409 message names)."""

from __future__ import annotations

import itertools
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from craton.inventory.graph import describe_cycle, find_cycle

Edge = tuple[int, int]


def assert_is_cycle_of(cycle: list[int] | None, edges: list[Edge]) -> None:
    """A closed path [a, b, …, a] whose every step is one of ``edges``, visiting no node twice."""
    assert cycle is not None
    assert len(cycle) >= 2 and cycle[0] == cycle[-1], cycle
    assert len(set(cycle[:-1])) == len(cycle) - 1, f"not a simple cycle: {cycle}"
    steps = set(itertools.pairwise(cycle))
    assert steps <= set(edges), f"{cycle} uses {steps - set(edges)}, not in the edges"


def has_cycle_reference(edges: list[Edge]) -> bool:
    """Plain three-colour DFS."""
    successors: dict[int, list[int]] = defaultdict(list)
    for source, target in edges:
        successors[source].append(target)
    white, grey, black = 0, 1, 2
    colour: dict[int, int] = defaultdict(int)

    def visit(node: int) -> bool:
        colour[node] = grey
        for nxt in successors[node]:
            if colour[nxt] == grey or (colour[nxt] == white and visit(nxt)):
                return True
        colour[node] = black
        return False

    nodes = {n for edge in edges for n in edge}
    return any(colour[node] == white and visit(node) for node in sorted(nodes))


def test_no_edges_has_no_cycle() -> None:
    assert find_cycle([]) is None


def test_chain_has_no_cycle() -> None:
    assert find_cycle([(1, 2), (2, 3), (3, 4)]) is None


def test_diamonds_are_not_cycles() -> None:
    """cloud > {compute, storage} > gpu: two paths to one node is a DAG, not a cycle."""
    diamond = [(1, 2), (1, 3), (2, 4), (3, 4)]
    assert find_cycle(diamond) is None
    stacked = [*diamond, (4, 5), (4, 6), (5, 7), (6, 7), (1, 7), (2, 7)]
    assert find_cycle(stacked) is None


def test_forest_and_duplicate_edges_have_no_cycle() -> None:
    assert find_cycle([(1, 2), (1, 2), (10, 11), (10, 12), (12, 11)]) is None


def test_self_loop_is_a_cycle() -> None:
    assert find_cycle([(5, 5)]) == [5, 5]


def test_two_node_cycle() -> None:
    edges = [(1, 2), (2, 1)]
    assert_is_cycle_of(find_cycle(edges), edges)


def test_triangle_cycle_follows_the_edges() -> None:
    edges = [(1, 2), (2, 3), (3, 1)]
    cycle = find_cycle(edges)
    assert_is_cycle_of(cycle, edges)
    assert set(cycle or []) == {1, 2, 3}


def test_cycle_behind_an_acyclic_part() -> None:
    """The path leading into the cycle (1 → 5) is not part of it."""
    edges = [(1, 5), (5, 6), (6, 7), (7, 8), (8, 6), (1, 2)]
    cycle = find_cycle(edges)
    assert_is_cycle_of(cycle, edges)
    assert set(cycle or []) == {6, 7, 8}


def test_edges_may_be_a_generator() -> None:
    cycle = find_cycle((a, b) for a, b in [(1, 2), (2, 3), (3, 1)])
    assert_is_cycle_of(cycle, [(1, 2), (2, 3), (3, 1)])


def test_describe_cycle_uses_names() -> None:
    assert describe_cycle([1, 2, 1], {1: "cloud", 2: "compute"}) == "cloud → compute → cloud"
    assert describe_cycle([1, 9, 1], {1: "cloud"}) == "cloud → 9 → cloud"


edge_lists = st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), max_size=20)


@settings(max_examples=300, deadline=None)
@given(edge_lists)
def test_find_cycle_agrees_with_dfs(edges: list[Edge]) -> None:
    cycle = find_cycle(edges)
    if has_cycle_reference(edges):
        assert_is_cycle_of(cycle, edges)
    else:
        assert cycle is None


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), max_size=60))
def test_edges_from_low_to_high_are_never_a_cycle(pairs: list[Edge]) -> None:
    """Any edge set that only goes from a smaller id to a larger one is a DAG."""
    dag = [(min(a, b), max(a, b)) for a, b in pairs if a != b]
    assert find_cycle(dag) is None
