"""The population: islands, MAP-Elites cells, elites, eviction, selection strategies, migration."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from service.config import SearchConfig
from service.evolution.archive import Archive, Member, code_features, feature_cell


def member(i: int, fitness: float, island: int = 0, diversity: float = 0.0,
           complexity: float = 1.0) -> Member:
    return Member(id=i, island=island, fitness=fitness, score=fitness, code_hash=f"h{i}",
                  features={"diversity": diversity, "complexity": complexity})


def test_best_is_the_fittest_across_islands() -> None:
    arch = Archive(SearchConfig(num_islands=2), random.Random(0))
    arch.add(member(1, 0.5, island=0))
    arch.add(member(2, 0.9, island=1))
    arch.add(member(3, 0.7, island=0))
    assert arch.best().id == 2
    assert [m.id for m in arch.elites] == [2, 3, 1]


def test_each_cell_keeps_its_best_program() -> None:
    arch = Archive(SearchConfig(num_islands=1, feature_bins=4), random.Random(0))
    arch.add(member(1, 0.2, diversity=0.1))
    arch.add(member(2, 0.5, diversity=0.15))  # same cell, better
    arch.add(member(3, 0.1, diversity=0.9))   # other cell
    grid = arch.islands[0].grid
    assert sorted(grid.values()) == [2, 3]


def test_population_cap_evicts_the_worst_non_elite() -> None:
    arch = Archive(SearchConfig(num_islands=1, population_size=3, feature_bins=2), random.Random(0))
    for i, f in enumerate([0.5, 0.4, 0.3, 0.9], start=1):
        outcome = arch.add(member(i, f, diversity=0.1))
    assert len(arch.islands[0].members) == 3
    assert outcome.evicted == [3]  # worst of the cell's non-elite members
    assert 4 in arch.islands[0].members


def test_eviction_never_removes_the_island_best() -> None:
    arch = Archive(SearchConfig(num_islands=1, population_size=2, feature_bins=10),
                   random.Random(0))
    arch.add(member(1, 1.0, diversity=0.05))
    arch.add(member(2, 0.1, diversity=0.55))
    arch.add(member(3, 0.2, diversity=0.95))
    assert 1 in arch.islands[0].members and len(arch.islands[0].members) == 2


@pytest.mark.parametrize("strategy", ["mixed", "fitness", "power_law", "uniform"])
def test_every_strategy_returns_a_member_of_the_island(strategy: str) -> None:
    arch = Archive(SearchConfig(num_islands=2, selection=strategy), random.Random(1))
    for i in range(20):
        arch.add(member(i, i / 20, island=i % 2, diversity=(i % 7) / 7))
    for _ in range(50):
        parent, insp = arch.sample(1)
        assert parent.island == 1
        assert parent.id not in [m.id for m in insp]


def test_power_law_prefers_better_programs() -> None:
    arch = Archive(SearchConfig(num_islands=1, selection="power_law", power_law_alpha=1.5),
                   random.Random(3))
    for i in range(10):
        arch.add(member(i, float(i), diversity=i / 10))
    counts = Counter(arch.sample(0)[0].id for _ in range(2000))
    assert counts[9] > counts[5] > counts[0]


def test_uniform_selection_is_flat() -> None:
    arch = Archive(SearchConfig(num_islands=1, selection="uniform"), random.Random(3))
    for i in range(4):
        arch.add(member(i, float(i), diversity=i / 4))
    counts = Counter(arch.sample(0)[0].id for _ in range(4000))
    assert min(counts.values()) > 850


def test_inspirations_are_top_and_diverse_without_the_parent() -> None:
    cfg = SearchConfig(num_islands=1, num_top_inspirations=2, num_diverse_inspirations=1,
                       selection="uniform")
    arch = Archive(cfg, random.Random(0))
    for i in range(8):
        arch.add(member(i, float(i), diversity=i / 8))
    parent, insp = arch.sample(0)
    assert len(insp) == 3
    assert parent.code_hash not in {m.code_hash for m in insp}
    top = [m.id for m in insp[:2]]
    assert all(t in [e.id for e in arch.elites[:3]] for t in top)


def test_ring_migration_sends_best_to_next_island_once() -> None:
    arch = Archive(SearchConfig(num_islands=3, migration_rate=0.5), random.Random(0))
    for i in range(6):
        arch.add(member(i, float(i), island=i % 3, diversity=i / 6))
    moves = arch.migrants()
    assert {(m.island, dest) for m, dest in moves} == {(0, 1), (1, 2), (2, 0)}
    for m, dest in moves:
        arch.add(Member(id=100 + m.id, island=dest, fitness=m.fitness, score=m.score,
                        code_hash=m.code_hash, features=m.features))
    again = arch.migrants()
    assert all(m.code_hash not in {x.code_hash for x in arch.islands[d].members.values()}
               for m, d in again)
    assert not {(m.code_hash, d) for m, d in again} & {(m.code_hash, d) for m, d in moves}


def test_replaying_the_same_adds_gives_the_same_archive() -> None:
    def build() -> Archive:
        arch = Archive(SearchConfig(num_islands=2, population_size=5), random.Random(7))
        rng = random.Random(42)
        for i in range(40):
            arch.add(member(i, rng.random(), island=i % 2, diversity=rng.random()))
        return arch
    a, b = build(), build()
    assert [sorted(i.members) for i in a.islands] == [sorted(i.members) for i in b.islands]
    assert [i.grid for i in a.islands] == [i.grid for i in b.islands]


def test_features_measure_length_and_distance_from_the_reference() -> None:
    ref = "x = 1\ny = 2\n"
    same = code_features(ref, ref)
    assert same == {"complexity": 1.0, "diversity": 0.0}
    longer = code_features(ref + "z = x * y + 3\n" * 3, ref)
    assert longer["complexity"] > 2 and 0 < longer["diversity"] < 1


def test_feature_cell_clamps_and_handles_metric_axes() -> None:
    cfg = SearchConfig(feature_dimensions=["complexity", "speed"], feature_bins=4,
                       feature_ranges={"speed": (0.0, 10.0)})
    assert feature_cell({"complexity": 5.0, "speed": 2.6}, cfg) == (3, 1)
    assert feature_cell({"complexity": float("nan")}, cfg) == (0, 0)
