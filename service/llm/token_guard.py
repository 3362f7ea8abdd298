"""Masks, at each step of an in-process decoding, the tokens that would break a DecodingRule.

The rule (service/edits/closable.py's PYTHON_BLOCK for rewrite answers) says which texts may
follow a state; this module turns it into token masks for one vocabulary. Only the tokens holding
one of the rule's special characters are ever tried, and each state's mask is built once and
cached (SmolLM2: 779 of 49,152 tokens tried, about 17 ms a mask, some 50 masks a run).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from service.llm.base import DecodingRule

_NONE = np.array([], dtype=np.intc)


class TokenTable:
    """A vocabulary's token texts and end-of-generation ids, with the masks built on it (a
    backend keeps one table for all its requests)."""

    def __init__(self, pieces: Sequence[str], eog: Sequence[int]) -> None:
        self.pieces = pieces
        self.eog = list(eog)
        self.masks: dict[tuple[str, Hashable], np.ndarray] = {}
        self._special: dict[str, list[int]] = {}

    def banned(self, rule: DecodingRule, state: Any) -> np.ndarray:
        """Returns the token ids that may not follow state under rule."""
        if not rule.guarded(state):
            return _NONE
        key = (rule.name, rule.key(state))
        mask = self.masks.get(key)
        if mask is None:
            ids = [i for i in self.special(rule) if rule.feed(key[1], self.pieces[i]) is None]
            if not rule.may_end(state):
                ids += self.eog
            mask = self.masks[key] = np.array(ids, dtype=np.intc)
        return mask

    def special(self, rule: DecodingRule) -> list[int]:
        """Returns the ids of the tokens that hold one of rule's special characters."""
        if rule.name not in self._special:
            chars = set(rule.special)
            self._special[rule.name] = [i for i, piece in enumerate(self.pieces)
                                        if chars.intersection(piece)]
        return self._special[rule.name]


class TokenGuard:
    """Follows one answer as it is decoded; before each token, masks what its state bans."""

    def __init__(self, table: TokenTable, rule: DecodingRule) -> None:
        self.table, self.rule = table, rule
        self.state: Any = rule.start()
        self.lost = False  # a token the rule refused came anyway: guarding stopped

    def feed(self, token: int) -> None:
        """Moves past a sampled token."""
        if self.lost:
            return
        pieces = self.table.pieces
        after = self.rule.feed(self.state, pieces[token]) if 0 <= token < len(pieces) else None
        self.lost = after is None
        self.state = self.state if after is None else after

    def __call__(self, _input_ids: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """Masks the banned tokens' logits (a llama-cpp-python logits processor)."""
        if not self.lost:
            logits[self.table.banned(self.rule, self.state)] = -np.inf
        return logits
