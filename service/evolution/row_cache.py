"""The engine's cache of program rows for prompts: the archive's members are the ones asked for."""

from __future__ import annotations

from collections import OrderedDict

from service.db.models import ProgramRow
from service.evolution.ledger import Ledger

ROW_CACHE_SIZE = 4096


class RowCache:
    """Program rows by id, least recently stored dropped first; misses read in one query."""

    def __init__(self, ledger: Ledger, size: int = ROW_CACHE_SIZE) -> None:
        self.ledger, self.size = ledger, size
        self._rows: OrderedDict[int, ProgramRow] = OrderedDict()

    def get(self, ids: list[int]) -> dict[int, ProgramRow]:
        """Returns the rows with these ids, reading the missing ones from the database."""
        missing = [i for i in ids if i not in self._rows]
        if missing:
            for row in self.ledger.programs(missing).values():
                self.put(row)
        return {i: self._rows[i] for i in ids}

    def put(self, row: ProgramRow) -> None:
        """Stores (or refreshes) a row."""
        self._rows[row.id] = row
        while len(self._rows) > self.size:
            self._rows.popitem(last=False)

    def drop(self, program_id: int) -> None:
        """Forgets a row (an evicted program)."""
        self._rows.pop(program_id, None)
