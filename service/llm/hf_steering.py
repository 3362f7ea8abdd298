"""Steering transformers' generate() one sequence of the batch at a time: a DecodingRule's token
masks (service/llm/token_guard.py) and Sampling.stop_when, as the llamacpp backend applies them.

transformers runs the processors given to generate() before its temperature and top-p warpers,
so a masked token is never sampled, whatever the warpers keep; a sequence a stopping criterion
ends is padded from there on while the others go on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from transformers import LogitsProcessor, StoppingCriteria

from service.llm.base import DecodingRule
from service.llm.token_guard import TokenGuard, TokenTable


def token_table(tokenizer: Any, eog: Sequence[int]) -> TokenTable:
    """Returns the tokenizer's token texts and end-of-generation ids, for token guards."""
    pieces = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    return TokenTable(pieces, sorted(set(eog)))


class RuleMasks(LogitsProcessor):
    """Masks, in each sequence, the tokens its copy of the rule refuses after what it holds."""

    def __init__(self, table: TokenTable, rule: DecodingRule, rows: int, prompt_len: int) -> None:
        self.guards = [TokenGuard(table, rule) for _ in range(rows)]
        self.prompt_len = prompt_len

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """Moves each sequence's guard past its last token; masks what each refuses next."""
        if input_ids.shape[1] > self.prompt_len:
            for guard, token in zip(self.guards, input_ids[:, -1].tolist(), strict=True):
                guard.feed(token)
        for row, guard in enumerate(self.guards):
            if not guard.lost:
                banned = guard.table.banned(guard.rule, guard.state)
                if banned.size:
                    scores[row, torch.from_numpy(banned.astype(np.int64))] = -math.inf
        return scores


class StopWhen(StoppingCriteria):
    """Ends each sequence once stop_when says its answer is done: asked when a token ends a
    line, on the text up to that line end. `lengths[row]`: the tokens it kept (None: not
    stopped)."""

    def __init__(self, pieces: Sequence[str], stop_when: Callable[[str], bool], rows: int,
                 prompt_len: int) -> None:
        self.pieces, self.stop_when, self.prompt_len = pieces, stop_when, prompt_len
        self.texts = [""] * rows
        self.lengths: list[int | None] = [None] * rows

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor,
                 **kwargs: Any) -> torch.BoolTensor:
        """Returns, per sequence, whether it is done."""
        generated = input_ids.shape[1] - self.prompt_len
        for row, token in enumerate(input_ids[:, -1].tolist()):
            if self.lengths[row] is not None or not 0 <= token < len(self.pieces):
                continue
            piece = self.pieces[token]
            self.texts[row] += piece
            text = self.texts[row]
            if "\n" in piece and self.stop_when(text[:text.rfind("\n") + 1]):
                self.lengths[row] = generated
        return torch.tensor([n is not None for n in self.lengths], dtype=torch.bool,
                            device=input_ids.device)
