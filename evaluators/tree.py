"""A program's files: one text form for a program that is a folder, and its files on disk.

A single-file program is its text. A program that is a folder (a problem's `initial_program/`)
is a map from relative path to text; its text form (what prompts show, what jobs carry, what
diffs compare) is each file under a header line, in path order:

    # ==== file: order.py ====
    <text of order.py>
    # ==== file: place.py ====
    <text of place.py>

The map is what the database keeps (ProgramRow.files); the text form is one function of it.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

SINGLE = "program.py"  # the one path of a single-file program: the file its evaluator reads
HEADER = "# ==== file: {path} ===="
HEADER_LINE = re.compile(r"^# ==== file: (?P<path>[^\n]+?) ====$", re.MULTILINE)
MAX_FILES = 64                 # files in one program
MAX_BYTES = 1 << 20            # UTF-8 bytes of all its files together
MAX_PATH_CHARS = 200           # characters of one relative path
PROGRAM_DIR = "program"        # where a job's tree is written, beside its job files
PLACED = ".evoforge-program"   # marks a folder evoforge wrote a program into (may replace it)

Files = dict[str, str]


class TreeError(ValueError):
    """A program tree breaks a rule (path, size, count); the message names it and the fix."""


def is_tree(code: str) -> bool:
    """Returns True when code is the text form of a program that is a folder."""
    return code.startswith("# ==== file: ") and HEADER_LINE.match(code) is not None


def join(files: Mapping[str, str]) -> str:
    """Returns the text form of files ({SINGLE: text} is the text itself)."""
    if set(files) == {SINGLE}:
        return files[SINGLE]
    parts = []
    for path in sorted(files):
        text = files[path]
        parts.append(HEADER.format(path=path) + "\n" + text
                     + ("" if not text or text.endswith("\n") else "\n"))
    return "".join(parts)


def split(code: str) -> Files:
    """Returns the files of a program's text form (a single-file program: {SINGLE: code})."""
    if not is_tree(code):
        return {SINGLE: code}
    return dict(_split(code))


@functools.lru_cache(maxsize=1024)  # prompts, edits and hashes split the same programs again
def _split(code: str) -> tuple[tuple[str, str], ...]:
    heads = list(HEADER_LINE.finditer(code))
    return tuple((head.group("path"),
                  code[head.end() + 1:heads[i + 1].start() if i + 1 < len(heads) else len(code)])
                 for i, head in enumerate(heads))


def check_path(path: str) -> str:
    """Returns path when it may name a file of a program tree; raises TreeError naming the rule."""
    pure = PurePosixPath(path)
    if not path or path != path.strip() or "\\" in path or "\n" in path:
        raise TreeError(f"{path!r}: not a plain relative path; use names like 'pkg/order.py'")
    if pure.is_absolute() or ".." in pure.parts or str(pure) != path:
        raise TreeError(f"{path!r}: absolute paths, '..' and '.' parts are not allowed in a "
                        "program tree; give a path relative to its folder")
    if len(path) > MAX_PATH_CHARS:
        raise TreeError(f"{path[:40]}...: a path is at most {MAX_PATH_CHARS} characters")
    if any(part.startswith(".") for part in pure.parts):
        raise TreeError(f"{path!r}: hidden files and folders are not part of a program tree")
    return path


def check(files: Mapping[str, str]) -> Files:
    """Returns files when they make a program tree within the limits; raises TreeError naming
    what is wrong and the fix."""
    if not files:
        raise TreeError("the program has no files; put at least one text file in it")
    if len(files) > MAX_FILES:
        raise TreeError(f"the program has {len(files)} files; at most {MAX_FILES} are allowed "
                        "(move data the program only reads into the problem folder)")
    size = 0
    for path, text in files.items():
        check_path(path)
        if not isinstance(text, str):
            raise TreeError(f"{path}: not text")
        if HEADER_LINE.search(text):
            raise TreeError(f"{path}: holds a '# ==== file: ... ====' line, which separates "
                            "files in a program's text; reword that line")
        size += len(text.encode())
    if size > MAX_BYTES:
        raise TreeError(f"the program's files hold {size} bytes; at most {MAX_BYTES} are allowed")
    return dict(files)


def read_folder(folder: Path) -> Files:
    """Returns the text files under folder by relative path; raises TreeError on links, special
    files, binary files or a tree past the limits."""
    files: Files = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if any(part.startswith(".") or part == "__pycache__" for part in PurePosixPath(rel).parts):
            continue
        if path.is_symlink():
            raise TreeError(f"{path}: a symbolic link; a program tree holds plain files only")
        if path.is_dir():
            continue
        if not path.is_file():
            raise TreeError(f"{path}: not a regular file; a program tree holds plain files only")
        if len(files) >= MAX_FILES:
            raise TreeError(f"{folder}: more than {MAX_FILES} files; a program tree holds at "
                            f"most {MAX_FILES}")
        try:
            files[rel] = path.read_bytes().decode()
        except UnicodeDecodeError:
            raise TreeError(f"{path}: not UTF-8 text; keep binary data in the problem folder, "
                            "not in the program") from None
    return check(files)


def write(code: str, program: Path) -> Path:
    """Writes a program's text where its evaluator reads it and returns the path to give the
    evaluator: the file `program` for a single file, else the folder PROGRAM_DIR beside it."""
    if not is_tree(code):
        program.write_text(code)
        return program
    root = program.parent / PROGRAM_DIR
    for rel, text in split(code).items():
        target = root / check_path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root


def place(code: str, out: Path) -> Path:
    """Writes a program for a user at out and returns where it went: the file out, or for a
    folder program the folder out without its suffix (replaced whole, no stale file kept)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if not is_tree(code):
        out.write_text(code)
        return out
    folder = out.with_suffix("") if out.suffix else out
    if folder.exists() and (not folder.is_dir() or (
            any(folder.iterdir()) and not (folder / PLACED).is_file())):
        raise TreeError(f"{folder}: exists and holds what evoforge did not write; give a new or "
                        "empty folder (a folder it wrote before is replaced)")
    import tempfile  # here: fork servers import this module, and tempfile imports random

    fresh = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    write(code, fresh / SINGLE)
    (fresh / PROGRAM_DIR / PLACED).write_text("written by evoforge; replaced when written again\n")
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(fresh / PROGRAM_DIR, folder)
    fresh.rmdir()
    return folder
