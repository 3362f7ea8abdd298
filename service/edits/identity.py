"""A program's identity for deduplication: the sha256 of its compiled form, so comments, blank
lines, quotes, parentheses and line breaks do not count; and the compiled form itself, made once
per text and shared with the child's compile check (apply.py).

The compiled form is CPython's bytecode with its names and constants, without line or column
numbers: two texts that compile to the same code are the same program (a constant the compiler
folds, `2 * 3` or `6`, or a set literal in another order count as the same too). Text that does
not compile, and files that are not Python, count by their whitespace-normalised text. The form
depends on the Python version's compiler: a run resumed under another Python may evaluate a
duplicate of a program stored before once more (the stored hash is migration 0012's or the
writer's).
"""

from __future__ import annotations

import functools
import hashlib
import warnings
from types import CodeType

from evaluators import tree

COMPILE_ERRORS = (SyntaxError, ValueError, RecursionError, MemoryError)


@functools.lru_cache(maxsize=1024)
def compiled(text: str) -> CodeType | Exception:
    """Returns the code object of Python source, or the exception compiling it raised (compiled
    once per text, with no flags inherited from evoforge's own modules)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return compile(text, tree.SINGLE, "exec", dont_inherit=True, optimize=0)
    except COMPILE_ERRORS as exc:
        return exc.with_traceback(None)


@functools.lru_cache(maxsize=4096)
def code_hash(code: str) -> str:
    """Returns the sha256 of the code's normalised form (comments and formatting do not count);
    a folder program's covers each file's path and normalised text."""
    if tree.is_tree(code):
        norm = "\0".join(f"{path}\0{normal(text, path)}"
                         for path, text in sorted(tree.split(code).items()))
    else:
        norm = normal(code, tree.SINGLE)
    return hashlib.sha256(norm.encode()).hexdigest()


@functools.lru_cache(maxsize=8192)  # a folder program's unchanged files repeat in every child
def normal(code: str, path: str) -> str:
    """Returns a file's normal form: the digest of its compiled code (Python that compiles), else
    its text with runs of whitespace made one space."""
    if path.endswith(".py"):
        code_object = compiled(code)
        if isinstance(code_object, CodeType):
            return "py:" + _code_digest(code_object)
    return " ".join(code.split())


def _code_digest(co: CodeType) -> str:
    """Returns the sha256 of a code object's bytecode, names, signature and constants (nested code
    by its own digest), without positions."""
    h = hashlib.sha256(co.co_code)
    h.update(repr((co.co_name, co.co_qualname, co.co_names, co.co_varnames, co.co_freevars,
                   co.co_cellvars, co.co_argcount, co.co_posonlyargcount, co.co_kwonlyargcount,
                   co.co_flags)).encode())
    h.update(_constant(co.co_consts).encode())
    return h.hexdigest()


def _constant(value: object) -> str:
    """Returns a constant's text, the same in every process (a frozenset's elements sorted: the
    order of a set of strings follows the process's hash seed)."""
    if isinstance(value, CodeType):
        return f"code:{_code_digest(value)}"
    if isinstance(value, tuple):
        return "(" + ",".join(_constant(v) for v in value) + ")"
    if isinstance(value, frozenset):
        return "frozenset(" + ",".join(sorted(_constant(v) for v in value)) + ")"
    return repr(value)
