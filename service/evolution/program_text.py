"""How a program's code appears in a prompt: its evolving code, an excerpt around its blocks,
and for a program that is a folder, each file under its path with the files that have no
EVOLVE-BLOCK (the model only calls them) cut down to their signatures."""

from __future__ import annotations

import ast
import functools
import textwrap
import warnings

from evaluators import tree
from service.problems.blocks import (
    block_name,
    block_text,
    hold_other_blocks,
    lenient_blocks,
    parse_block_name,
)

CONTEXT_LINES = 3  # lines kept around each EVOLVE-BLOCK when only the blocks are shown
ELIDED = "# ...\n"  # between EVOLVE-BLOCK bodies shown without the code around them
NOT_SHOWN = "# ... (code not shown) ..."


def evolving(code: str, separator: str = ELIDED) -> str:
    """Returns the evolving code: the block bodies joined by separator; a folder program's under
    each file's header (files without blocks left out)."""
    if not tree.is_tree(code):
        return block_text(code, separator)
    return "".join(tree.HEADER.format(path=path) + "\n" + _ended(block_text(text, separator))
                   for path, text in tree.split(code).items() if lenient_blocks(text))


def shown(code: str, excerpt: bool) -> str:
    """Returns the program as a prompt shows it: whole, or (excerpt) its EVOLVE-BLOCKs with a few
    lines around; a folder program's files without blocks as signatures only."""
    if not tree.is_tree(code):
        return blocks_excerpt(code) if excerpt else code
    parts = []
    for path, text in tree.split(code).items():
        if lenient_blocks(text):
            body = blocks_excerpt(text) if excerpt else text
        else:
            body = signatures(text, path)
        parts.append(tree.HEADER.format(path=path) + "\n" + _ended(body))
    return "".join(parts)


def file_blocks(code: str, name: str, separator: str = ELIDED) -> str:
    """Returns the evolving code of one file of a folder program (`place.py#2`: of its second
    block alone), dedented."""
    path, number = parse_block_name(name)
    text = tree.split(code)[path]
    if number is not None:
        text = hold_other_blocks(text, number)[0]
    return textwrap.dedent(block_text(text, separator))


def editable(code: str) -> list[str]:
    """Returns what a rewrite of a folder program may target, in path order: a file with one
    EVOLVE-BLOCK by its path, each block of a file of several by block_name (`place.py#2`)."""
    out = []
    for path, text in tree.split(code).items():
        count = len(lenient_blocks(text))
        out += [path] if count == 1 else [block_name(path, k) for k in range(1, count + 1)]
    return out


def blocks_excerpt(code: str, context: int = CONTEXT_LINES) -> str:
    """Returns code cut down to its EVOLVE-BLOCKs (markers included) and `context` lines around."""
    lines = code.splitlines()
    keep: set[int] = set()
    for start, end in lenient_blocks(code):
        first = code.count("\n", 0, start) - 1  # the START marker line
        last = code.count("\n", 0, end)  # the END marker line
        keep.update(range(max(0, first - context), min(len(lines), last + context + 1)))
    if not keep:
        return code
    out, previous = [], -1
    for index in sorted(keep):
        if index != previous + 1:
            out.append(NOT_SHOWN)
        out.append(lines[index])
        previous = index
    if previous < len(lines) - 1:
        out.append(NOT_SHOWN)
    return "\n".join(out) + "\n"


@functools.lru_cache(maxsize=1024)  # the same support files appear in every prompt
def signatures(text: str, path: str) -> str:
    """Returns a file cut down to its imports, constants and def/class lines with their
    docstrings' first line (Python); other files whole."""
    if not path.endswith(".py"):
        return text
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return text
    lines = text.splitlines()
    out: list[str] = []

    def walk(nodes: list[ast.stmt], depth: int) -> None:
        for node in nodes:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                head = node.body[0]
                out.extend(lines[node.lineno - 1:head.lineno - 1] or [lines[node.lineno - 1]])
                doc = ast.get_docstring(node)
                indent = "    " * (depth + 1)
                if doc:
                    out.append(f'{indent}"""{doc.splitlines()[0]}"""')
                if isinstance(node, ast.ClassDef):
                    walk(node.body, depth + 1)
                out.append(f"{indent}...")
            elif depth == 0 and isinstance(node, ast.Import | ast.ImportFrom | ast.Assign
                                           | ast.AnnAssign):
                out.extend(lines[node.lineno - 1:node.end_lineno])

    walk(module.body, 0)
    return "# (signatures only)\n" + "\n".join(out) + "\n"


def _ended(text: str) -> str:
    """Returns text ending with one line break."""
    return text if text.endswith("\n") else text + "\n"
