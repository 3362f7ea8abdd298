"""Token masks from a decoding rule: what is masked, when, and how the masks are cached."""

from __future__ import annotations

import numpy as np

from service.edits.closable import CODE, PYTHON_BLOCK
from service.llm.token_guard import TokenGuard, TokenTable

PIECES = ["x", " =", " [", "1", "]", ")", "\n", "```", "'", "#", "<eos>"]
EOS = PIECES.index("<eos>")


def ids(pieces: list[str]) -> list[int]:
    """Returns the token ids of the pieces in the toy vocabulary."""
    return [PIECES.index(p) for p in pieces]


def masked(guard: TokenGuard) -> set[str]:
    """Returns the pieces whose logits the guard masks now."""
    logits = guard(np.array([]), np.zeros(len(PIECES), dtype=np.float32))
    return {PIECES[i] for i in np.flatnonzero(np.isinf(logits))}


def test_logits_of_banned_tokens_are_masked_and_follow_the_sampled_tokens():
    table = TokenTable(PIECES, [EOS])
    guard = TokenGuard(table, PYTHON_BLOCK)
    assert masked(guard) == set()  # prose before the block: nothing is banned
    for token in ids(["```", "\n"]):  # the opening fence, in two tokens
        guard.feed(token)
    assert guard.state.mode == CODE
    for token in ids(["x", " =", " ["]):
        guard.feed(token)
    assert masked(guard) == {")", "```", "<eos>"}  # "]" closes "[": allowed
    guard.feed(PIECES.index("]"))
    # nothing open: the answer may end, but a fence only on a line of its own
    assert masked(guard) == {"]", ")", "```"}
    assert len(table.masks) == 2  # one per guarded state met, built from the special tokens only
    assert table.special(PYTHON_BLOCK) == ids([" [", "]", ")", "\n", "```", "'", "#"])


def test_a_token_the_rule_refused_stops_the_guarding():
    guard = TokenGuard(TokenTable(PIECES, [EOS]), PYTHON_BLOCK)
    for token in ids(["```", "\n", ")"]):
        guard.feed(token)
    assert guard.lost and masked(guard) == set()
