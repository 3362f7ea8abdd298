"""Edits to a program that is a folder: each SEARCH/REPLACE block or rewritten block is applied
to the file the answer names (or the one file it can be), never across files.

An answer names a file on a line of its own before the edit: the path alone, decorated
(`order.py`, **order.py**, ### order.py, File: order.py) or as the header line the prompt shows
(`# ==== file: order.py ====`); `place.py#2` names the second block of a file of several, which
a rewrite then replaces alone. A rewrite with no name goes to the prompt's target.
"""

from __future__ import annotations

import re

from evaluators import tree
from service.edits.common import FENCE, PYTHON_TAGS, Rejected
from service.edits.diff import Block, apply_diff
from service.edits.rewrite import rewrite
from service.problems.blocks import (
    hold_other_blocks,
    lenient_blocks,
    parse_block_name,
    release_blocks,
)

_DECORATION = re.compile(r"^(?:#+\s*|[-*]\s+)?(?:file\s*:\s*)?[`*'\"]*(?P<path>[^`*'\"]+?)"
                         r"[`*'\":]*$", re.IGNORECASE)
_LOOKS_LIKE_PATH = re.compile(r"^[\w./-]+\.(?:py|pyi|txt|json|toml|ya?ml|cfg|ini|md|c|h|cc|cpp|hpp|"
                              r"js|ts|rs|go|jl|sh)$")


def named_path(line: str) -> str | None:
    """Returns the path a line of an answer names (a header line or a decorated path), else None."""
    text = line.strip()
    head = tree.HEADER_LINE.match(text)
    if head:
        return head.group("path")
    match = _DECORATION.match(text)
    return match.group("path").strip() if match and match.group("path").strip() else None


def edit_tree(parent: str, answer: str, blocks: list[Block], fmt: str,
              target: str | None) -> tuple[str, int, bool]:
    """Returns (child text form, blocks applied, whole-file answer) of an answer to a folder
    program; raises Rejected naming the file and the reason."""
    files = tree.split(parent)
    names = _names(answer, files)
    if blocks:
        return tree.join(_apply_diffs(files, blocks, names)), len(blocks), False
    if fmt == "diff" and not _code_blocks(answer):
        raise Rejected("no SEARCH/REPLACE blocks found; name the file on a line of its own, then "
                       "answer with '<<<<<<< SEARCH', the old lines, '=======', the new lines, "
                       "'>>>>>>> REPLACE'")
    return _apply_rewrites(files, answer, names, target)


def _names(answer: str, files: dict[str, str]) -> list[tuple[int, str]]:
    """Returns (answer line, path) of each line naming a file: one of the program's, or a path
    it does not have (Rejected when an edit follows it)."""
    out = []
    for number, line in enumerate(answer.split("\n"), 1):
        name = named_path(line)
        path = parse_block_name(name)[0] if name is not None else None
        if path is not None and (path in files or _LOOKS_LIKE_PATH.match(path)):
            out.append((number, name))
    return out


def _named_before(line: int, names: list[tuple[int, str]], files: dict[str, str]) -> str | None:
    """Returns the file named last before an answer line; Rejected when it is not the program's
    or has no EVOLVE-BLOCK."""
    name = next((p for number, p in reversed(names) if number < line), None)
    path = parse_block_name(name)[0] if name is not None else None
    if path is not None and path not in files:
        raise Rejected(f"the answer edits {path}, which is not a file of the program; its files "
                       f"are {', '.join(sorted(files))}")
    if path is not None and not lenient_blocks(files[path]):
        raise Rejected(f"{path}: has no EVOLVE-BLOCK and cannot change; edit "
                       f"{', '.join(_editable(files))}")
    return name


def _editable(files: dict[str, str]) -> list[str]:
    """Returns the paths of the files that have EVOLVE-BLOCKs."""
    return [path for path, text in files.items() if lenient_blocks(text)]


def _apply_diffs(files: dict[str, str], blocks: list[Block],
                 names: list[tuple[int, str]]) -> dict[str, str]:
    """Returns the files with each block applied to the file it names (or the one it fits)."""
    out = dict(files)
    for index, block in enumerate(blocks, 1):
        name = _named_before(block.line, names, files)
        path = parse_block_name(name)[0] if name is not None else None
        if path is None:
            fits = [p for p in _editable(out) if _applies(out[p], block)]
            if len(fits) != 1:
                where = ("in no file's EVOLVE-BLOCK" if not fits
                         else f"in several files ({', '.join(fits)})")
                raise Rejected(f"diff block {index} of {len(blocks)}: its SEARCH text is {where}; "
                               "name the file on the line before '<<<<<<< SEARCH'")
            path = fits[0]
        try:
            out[path] = apply_diff(out[path], [block])
        except Rejected as exc:
            raise Rejected(f"{path}: diff block {index} of {len(blocks)}: "
                           f"{str(exc).split(': ', 1)[-1]}") from None
    return out


def _applies(text: str, block: Block) -> bool:
    """Returns True when the block applies inside the text's EVOLVE-BLOCKs."""
    try:
        apply_diff(text, [block])
    except Rejected:
        return False
    return True


def _code_blocks(answer: str) -> list[tuple[int, str]]:
    """Returns (answer line of its opening fence, code) of each closed ```python block."""
    out, lang, start, lines = [], None, 0, []
    for number, line in enumerate(answer.split("\n"), 1):
        match = FENCE.match(line)
        if lang is None and match:
            lang, start, lines = match.group(1).lower(), number, []
        elif lang is not None and match and not match.group(1):
            if lang in PYTHON_TAGS:
                out.append((start, "\n".join(lines)))
            lang = None
        elif lang is not None:
            lines.append(line)
    return out


def _apply_rewrites(files: dict[str, str], answer: str, names: list[tuple[int, str]],
                    target: str | None) -> tuple[str, int, bool]:
    """Returns the child of a rewrite answer: each named code block replaces its file's blocks;
    an unnamed answer goes to the target file (or the one file with blocks)."""
    named = [(p, code) for line, code in _code_blocks(answer)
             if (p := _named_before(line, names, files)) is not None]
    out, count, whole = dict(files), 0, False
    if named:
        for name, code in named:
            path = parse_block_name(name)[0]
            out[path], n, more = _rewrite(out, name, f"```python\n{code}\n```", False)
            count, whole = count + n, whole or more
        return tree.join(out), count, whole
    editable = _editable(files)
    name = target if target is not None and parse_block_name(target)[0] in files else (
        editable[0] if len(editable) == 1 else None)
    if name is None:
        raise Rejected(f"the answer does not say which file it rewrites; put the file's path "
                       f"({', '.join(editable)}) on the line before its code block")
    path = parse_block_name(name)[0]
    out[path], count, whole = _rewrite(out, name, answer, True)
    return tree.join(out), count, whole


def _rewrite(files: dict[str, str], name: str, answer: str,
             allow_plain: bool) -> tuple[str, int, bool]:
    """Returns rewrite() of one file, or of one of its blocks (`place.py#2`: the others held
    as they are); its rejection names the file."""
    path, number = parse_block_name(name)
    try:
        if number is None:
            return rewrite(files[path], answer, allow_plain=allow_plain)
        held, count = hold_other_blocks(files[path], number)
        if not 1 <= number <= count:
            raise Rejected(f"it has {count} EVOLVE-BLOCK(s); name one of {path}#1..{count}")
        child, n, whole = rewrite(held, answer, allow_plain=allow_plain)
        return release_blocks(child), n, whole
    except Rejected as exc:
        raise Rejected(f"{path}: {exc}") from None


def check_tree(parent: str, child: str) -> list[tuple[str, str, str]]:
    """Returns (path, parent text, child text) of each file; Rejected when the child adds,
    removes or renames a file, or changes one that has no EVOLVE-BLOCK."""
    before, after = tree.split(parent), tree.split(child)
    if set(before) != set(after):
        added, gone = sorted(set(after) - set(before)), sorted(set(before) - set(after))
        raise Rejected(f"the child adds {added or 'no file'} and removes {gone or 'no file'}; "
                       "edits change the files' EVOLVE-BLOCKs only")
    for path in sorted(before):
        if before[path] != after[path] and not lenient_blocks(before[path]):
            raise Rejected(f"{path}: has no EVOLVE-BLOCK and cannot change")
    return [(path, before[path], after[path]) for path in sorted(before)]
