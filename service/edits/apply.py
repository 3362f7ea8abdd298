"""Turns an LLM answer (SEARCH/REPLACE diff or full rewrite) into a child program or a rejection."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from evaluators import tree
from service.edits.common import Rejected, regions
from service.edits.diff import REPLACE_LINE, apply_diff, diff_blocks
from service.edits.identity import code_hash, compiled
from service.edits.repair import readings
from service.edits.rewrite import closed_prefix, fenced_code, rewrite
from service.edits.tree_edit import check_tree, edit_tree

Format = Literal["diff", "rewrite"]
_COMPILER = ("SyntaxError", "the child does not compile")


@dataclass(frozen=True)
class EditResult:
    """What an answer made: the child code, or why there is none.

    format_used is how the answer was read (a diff answer holding only a code block is read as a
    rewrite); None when it was not read at all (cut off). changed is False when the child is the
    parent up to comments and formatting (same code_hash). blocks_applied counts SEARCH/REPLACE
    blocks (diff) or EVOLVE-BLOCKs rewritten (rewrite); 0 on rejection. repair names the repairs
    of the answer's form the child took, joined with "+" (service/edits/repair.py); None when the
    answer was read as written.
    """

    code: str | None
    rejection: str | None
    format_used: Format | None
    changed: bool = False
    blocks_applied: int = 0
    repair: str | None = None

    @property
    def ok(self) -> bool:
        """Returns True when the answer gave a child program."""
        return self.code is not None


def choose_format(answer_format: str, small_model: bool) -> Format:
    """Returns the answer format to ask for ('auto': rewrite for small models, else diff)."""
    if answer_format == "auto":
        return "rewrite" if small_model else "diff"
    if answer_format in ("diff", "rewrite"):
        return answer_format  # type: ignore[return-value]
    raise ValueError(f"answer_format {answer_format!r} is unknown; use 'auto', 'diff' or 'rewrite'")


def apply_answer(parent_code: str, answer: str, fmt: Format, truncated: bool = False,
                 repair: bool = True, target: str | None = None) -> EditResult:
    """Returns the child the answer makes of parent_code, or a rejection naming the reason.

    When the answer as written gives no child and repair is True, its repaired readings are tried
    in order (service/edits/repair.py) and the first child one gives is kept, naming its repairs;
    when none gives a child the answer is rejected as written, or (an answer not cut off) with
    the compiler's message on a repaired reading when as written it never reached the compiler.
    target: the file of a folder program the prompt asked to rewrite."""
    if fmt not in ("diff", "rewrite"):
        raise ValueError(f"fmt {fmt!r} is unknown; use 'diff' or 'rewrite'")
    answer = answer.replace("\r\n", "\n")
    written = read_answer(parent_code, answer, fmt, truncated, target)
    if not repair:
        return written
    if written.ok:
        return written
    if fmt == "diff" and truncated and (cut := _closed_diff(answer)) is not None:
        result = read_answer(parent_code, cut, fmt, target=target)
        if result.ok:
            return replace(result, repair="drop_cut_line")
    if fmt == "diff" and _has_diff_blocks(answer):
        return written  # a SEARCH/REPLACE answer: its blocks are what it says, as written
    compiler = None
    for reading in readings(answer, truncated):
        result = read_answer(parent_code, reading.fenced(), "rewrite", target=target)
        if result.ok:
            whole = result.repair is not None or fmt == "diff"  # a diff asked, code given
            names = reading.repairs + (("whole_file",) if whole else ())
            return replace(result, repair="+".join(names) or "fence")
        if compiler is None and result.rejection.startswith(_COMPILER):
            compiler = f"{result.rejection} (read after repairs: {'+'.join(reading.repairs)})"
    if compiler is not None and not truncated and not written.rejection.startswith(_COMPILER):
        return replace(written, rejection=compiler)
    return written


def read_answer(parent_code: str, answer: str, fmt: Format, truncated: bool = False,
                target: str | None = None) -> EditResult:
    """Returns the child the answer makes as written, or why it makes none. Its one repair: the
    block's body taken out of a whole file (repair "whole_file"), as since the first release."""
    answer = answer.replace("\r\n", "\n")
    if truncated:
        # A rewrite whose code fence closed before the cut is complete code; anything else is not.
        kept = closed_prefix(answer) if fmt == "rewrite" else None
        if kept is None:
            return EditResult(None, "answer cut off at max_tokens (finish_reason 'length'); raise "
                              "llm.max_tokens or ask for shorter answers", None)
        answer = kept
    used: Format = fmt
    try:
        if not answer.strip():
            raise Rejected("empty answer")
        blocks = diff_blocks(answer) if fmt == "diff" else []
        if tree.is_tree(parent_code):
            child, count, whole = edit_tree(parent_code, answer, blocks, fmt, target)
            used = "diff" if blocks else "rewrite"
        elif blocks:
            child = apply_diff(parent_code, blocks)
            count = len(blocks)
        elif fmt == "diff" and fenced_code(answer) is None:
            raise Rejected("no SEARCH/REPLACE blocks found; answer with '<<<<<<< SEARCH', the old "
                          "lines, '=======', the new lines, '>>>>>>> REPLACE'")
        else:
            used = "rewrite"
            child, count, whole = rewrite(parent_code, answer, allow_plain=fmt == "rewrite")
        _check_child(parent_code, child)
    except Rejected as reason:
        return EditResult(None, str(reason), used)
    return EditResult(child, None, used, code_hash(child) != code_hash(parent_code), count,
                      "whole_file" if used == "rewrite" and (whole or fmt == "diff") else None)


def _has_diff_blocks(answer: str) -> bool:
    """Returns True when the answer holds SEARCH/REPLACE blocks (well formed or not)."""
    try:
        return bool(diff_blocks(answer))
    except Rejected:
        return True


def _closed_diff(answer: str) -> str | None:
    """Returns a cut diff answer up to its last closed SEARCH/REPLACE block, else None."""
    lines = answer.split("\n")
    last = max((i for i, line in enumerate(lines) if REPLACE_LINE.match(line)), default=None)
    return None if last is None else "\n".join(lines[:last + 1])


# --- checks -----------------------------------------------------------------------------------


def _check_child(parent: str, child: str) -> None:
    """Raises Rejected when the child changed code outside its blocks or does not compile (a
    folder program: any of its files; the reason names the file)."""
    if not tree.is_tree(parent):
        _check_file(parent, child, "")
        return
    for path, before, after in check_tree(parent, child):
        if before != after:
            _check_file(before, after, path)


def _check_file(parent: str, child: str, path: str) -> None:
    """Raises Rejected when one file changed outside its blocks or (Python) does not compile."""
    where = f"{path}: " if path else ""
    if _outside(child) != _outside(parent):
        raise Rejected(f"{where}the child changes code outside the EVOLVE-BLOCKs or their "
                       "markers; change only the lines between the markers")
    if path and not path.endswith(".py"):
        return
    exc = compiled(child)
    if isinstance(exc, SyntaxError):
        text = (exc.text or "").strip()
        raise Rejected(f"SyntaxError: {where}{exc.msg} at line {exc.lineno}"
                       + (f": {text[:80]!r}" if text else ""))
    if isinstance(exc, Exception):
        raise Rejected(f"the child does not compile: {where}{type(exc).__name__}: {exc}")


def _outside(code: str) -> list[str]:
    """Returns the pieces of code outside its EVOLVE-BLOCK bodies (markers included)."""
    pieces, pos = [], 0
    for start, end in regions(code):
        pieces.append(code[pos:start])
        pos = end
    return pieces + [code[pos:]]
