"""The population: islands, a MAP-Elites grid per island, a global elite archive, parent sampling.

Pure in-memory state rebuilt from the database by replaying `add` in program-id order, so the
same rows always give the same archive. No I/O here.
"""

from __future__ import annotations

import difflib
import math
import random
from dataclasses import dataclass, field

from service.config import SearchConfig

Cell = tuple[int, ...]


@dataclass(frozen=True)
class Member:
    """A scored program as the archive sees it; fitness: the score oriented so larger is better."""

    id: int
    island: int
    fitness: float
    score: float
    code_hash: str
    features: dict[str, float] = field(default_factory=dict, hash=False, compare=False)
    generation: int = 0


@dataclass
class AddOutcome:
    """What adding a member changed."""

    kept: bool
    evicted: list[int]
    new_best: bool
    cell: Cell


@dataclass
class Island:
    """One island's members and its MAP-Elites grid (cell -> id of the best member there)."""

    members: dict[int, Member] = field(default_factory=dict)
    cells: dict[int, Cell] = field(default_factory=dict)
    grid: dict[Cell, int] = field(default_factory=dict)

    def best(self) -> Member | None:
        """Returns the fittest member (lowest id breaks ties)."""
        return max(self.members.values(), key=lambda m: (m.fitness, -m.id), default=None)

    def ranked(self) -> list[Member]:
        """Returns members from fittest to least fit."""
        return sorted(self.members.values(), key=lambda m: (-m.fitness, m.id))


def code_features(code: str, reference: str) -> dict[str, float]:
    """Returns the default feature coordinates: complexity (length vs reference) and diversity."""
    # Lines, not characters: the character-level ratio is quadratic and cost 35 ms per child.
    matcher = difflib.SequenceMatcher(None, reference.splitlines(), code.splitlines(),
                                      autojunk=False)
    return {"complexity": len(code) / max(1, len(reference)), "diversity": 1.0 - matcher.ratio()}


def feature_cell(features: dict[str, float], cfg: SearchConfig) -> Cell:
    """Returns the MAP-Elites cell of a feature vector (unknown or non-finite values: bin 0)."""
    cell = []
    for dim in cfg.feature_dimensions:
        lo, hi = cfg.feature_ranges.get(dim, _DEFAULT_RANGES.get(dim, (0.0, 1.0)))
        value = features.get(dim, lo)
        if not math.isfinite(value) or hi <= lo:
            cell.append(0)
            continue
        frac = (min(max(value, lo), hi) - lo) / (hi - lo)
        cell.append(min(cfg.feature_bins - 1, int(frac * cfg.feature_bins)))
    return tuple(cell)


_DEFAULT_RANGES = {"complexity": (0.0, 2.0), "diversity": (0.0, 1.0)}


class Archive:
    """Islands with ring migration, per-island MAP-Elites, a global elite list, and sampling."""

    def __init__(self, cfg: SearchConfig, rng: random.Random) -> None:
        self.cfg = cfg
        self.rng = rng
        self.islands = [Island() for _ in range(cfg.num_islands)]
        self.elites: list[Member] = []
        self.size = 0

    def add(self, member: Member) -> AddOutcome:
        """Adds a scored program to its island, updating grid, elites and evictions."""
        isl = self.islands[member.island % len(self.islands)]
        prior_best = self.best()
        cell = feature_cell(member.features, self.cfg)
        isl.members[member.id] = member
        isl.cells[member.id] = cell
        holder = isl.grid.get(cell)
        if holder is None or _beats(member, isl.members[holder]):
            isl.grid[cell] = member.id
        self._update_elites(member)
        evicted = self._evict(isl)
        self.size = sum(len(i.members) for i in self.islands)
        new_best = prior_best is None or _beats(member, prior_best)
        return AddOutcome(kept=member.id in isl.members, evicted=evicted, new_best=new_best,
                          cell=cell)

    def best(self) -> Member | None:
        """Returns the fittest member over all islands."""
        return self.elites[0] if self.elites else None

    def sample(self, island: int) -> tuple[Member, list[Member]]:
        """Returns (parent, inspirations) for a child on the given island."""
        isl = self.islands[island % len(self.islands)]
        if not isl.members:
            isl = max(self.islands, key=lambda i: len(i.members))
        if not isl.members:
            raise ValueError("archive is empty: evaluate the initial program first")
        parent = self._select_parent(isl)
        return parent, self._inspirations(isl, parent)

    def migrants(self) -> list[tuple[Member, int]]:
        """Returns (member, destination island) pairs for one ring migration step."""
        if len(self.islands) < 2:
            return []
        moves: list[tuple[Member, int]] = []
        for idx, isl in enumerate(self.islands):
            dest = (idx + 1) % len(self.islands)
            count = (max(1, math.ceil(self.cfg.migration_rate * len(isl.members)))
                     if isl.members else 0)
            present = {m.code_hash for m in self.islands[dest].members.values()}
            for member in isl.ranked()[:count]:
                if member.code_hash not in present:
                    moves.append((member, dest))
        return moves

    def reset_island(self, island: int) -> list[int]:
        """Empties an island (members and grid; global elites stay); returns the removed ids."""
        isl = self.islands[island % len(self.islands)]
        removed = sorted(isl.members)
        isl.members.clear()
        isl.cells.clear()
        isl.grid.clear()
        self.size = sum(len(i.members) for i in self.islands)
        return removed

    def _select_parent(self, isl: Island) -> Member:
        ranked = isl.ranked()
        strategy, r = self.cfg.selection, self.rng.random()
        if strategy == "mixed":
            if r < self.cfg.exploit_ratio:
                return self._power_law(ranked[: max(1, self.cfg.elite_size)])
            if r < self.cfg.exploit_ratio + self.cfg.explore_ratio:
                return self.rng.choice(ranked)
            cell_elites = sorted(isl.grid.values())
            return isl.members[self.rng.choice(cell_elites)]
        if strategy == "fitness":
            return self._fitness_proportional(ranked)
        if strategy == "power_law":
            return self._power_law(ranked)
        return self.rng.choice(ranked)

    def _power_law(self, ranked: list[Member]) -> Member:
        weights = [(rank + 1) ** -self.cfg.power_law_alpha for rank in range(len(ranked))]
        return self.rng.choices(ranked, weights=weights, k=1)[0]

    def _fitness_proportional(self, ranked: list[Member]) -> Member:
        values = [m.fitness for m in ranked]
        spread = (max(values) - min(values)) or 1.0
        t = self.cfg.fitness_temperature * spread
        weights = [math.exp((v - values[0]) / t) for v in values]
        return self.rng.choices(ranked, weights=weights, k=1)[0]

    def _inspirations(self, isl: Island, parent: Member) -> list[Member]:
        chosen: list[Member] = []
        seen = {parent.code_hash}
        for member in self.elites:
            if len(chosen) >= self.cfg.num_top_inspirations:
                break
            if member.code_hash not in seen:
                chosen.append(member)
                seen.add(member.code_hash)
        parent_cell = isl.cells.get(parent.id)
        others = [isl.members[i] for c, i in sorted(isl.grid.items()) if c != parent_cell]
        others = [m for m in others if m.code_hash not in seen]
        self.rng.shuffle(others)
        chosen.extend(others[: self.cfg.num_diverse_inspirations])
        return chosen

    def _update_elites(self, member: Member) -> None:
        if any(e.code_hash == member.code_hash for e in self.elites):
            return
        self.elites.append(member)
        self.elites.sort(key=lambda m: (-m.fitness, m.id))
        del self.elites[self.cfg.elite_size:]

    def _evict(self, isl: Island) -> list[int]:
        evicted: list[int] = []
        while len(isl.members) > self.cfg.population_size:
            best = isl.best()
            elite_ids = set(isl.grid.values())
            pool = [m for m in isl.members.values() if m.id not in elite_ids and m is not best]
            if not pool:
                pool = [m for m in isl.members.values() if m is not best]
            victim = min(pool, key=lambda m: (m.fitness, -m.id))
            cell = isl.cells.pop(victim.id)
            del isl.members[victim.id]
            if isl.grid.get(cell) == victim.id:
                del isl.grid[cell]
            evicted.append(victim.id)
        return evicted


def _beats(a: Member, b: Member) -> bool:
    return (a.fitness, -a.id) > (b.fitness, -b.id)
