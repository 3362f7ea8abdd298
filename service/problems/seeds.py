"""A problem's starting programs: `initial_program.py`, a folder `initial_program/`, or several
under `initial_programs/` (or listed in problem.toml), each read and checked.

Every seed is a file or a folder (a program tree, evaluators/tree.py); all of a problem's seeds
take the same form, since its evaluator reads either a file or a folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluators import tree
from service.problems.blocks import BLOCK_END, BLOCK_START, MarkerError, evolve_blocks

SEEDS_DIR = "initial_programs"
MAX_SEEDS = 64


class SeedError(ValueError):
    """A starting program is missing or malformed; the message names the file and the fix."""


@dataclass(frozen=True)
class Seed:
    """A starting program: its name (file or folder name), text form and where it was read."""

    name: str
    code: str
    path: Path | None = None  # the file or folder in the problem folder (None: built in code)


def read_seeds(folder: Path, meta: dict[str, Any], toml: Path) -> tuple[Seed, ...]:
    """Returns a problem folder's starting programs, first the one `initial_program` names;
    raises SeedError naming the file and the fix."""
    listed = meta.get("initial_programs")
    if listed is not None:
        if not isinstance(listed, list) or not listed or not all(
                isinstance(item, str) for item in listed):
            raise SeedError(f"{toml}: initial_programs = {listed!r}; give a list of paths in the "
                            "problem folder, e.g. [\"seeds/greedy.py\", \"seeds/random.py\"]")
        paths = [_inside(folder, item, toml) for item in listed]
    elif "initial_program" in meta:
        paths = [_inside(folder, str(meta["initial_program"]), toml)]
    elif (folder / SEEDS_DIR).is_dir():
        paths = sorted(p for p in (folder / SEEDS_DIR).iterdir()
                       if not p.name.startswith(".") and p.name != "__pycache__")
        if not paths:
            raise SeedError(f"{folder / SEEDS_DIR}: empty; put one file or folder per starting "
                            "program in it")
    elif (folder / "initial_program").is_dir():
        paths = [folder / "initial_program"]
    else:
        paths = [folder / "initial_program.py"]
    if len(paths) > MAX_SEEDS:
        raise SeedError(f"{folder}: {len(paths)} starting programs; at most {MAX_SEEDS}")
    seeds = tuple(read_seed(path) for path in paths)
    forms = {tree.is_tree(seed.code) for seed in seeds}
    if len(forms) > 1:
        raise SeedError(f"{folder}: some starting programs are files and some are folders; the "
                        "evaluator reads one form: make them all files or all folders")
    return seeds


def read_seed(path: Path) -> Seed:
    """Returns the starting program at path (a file, or a folder of files); raises SeedError."""
    if path.is_dir():
        try:
            files = tree.read_folder(path)
        except tree.TreeError as exc:
            raise SeedError(f"{path}: {exc}") from None
        check_blocks(files, path)
        return Seed(path.name, tree.join(_as_tree(files)), path)
    if not path.is_file():
        raise SeedError(f"{path}: missing; a problem folder needs initial_program.py (or a "
                        "folder initial_program/) with the program to evolve")
    code = path.read_text()
    check_blocks({path.name: code}, path)
    return Seed(path.stem, code, path)


def check_blocks(files: dict[str, str], where: Path) -> None:
    """Raises SeedError unless every file's markers are balanced and some file has a block; a
    single file without markers evolves whole, as in OpenEvolve (whole_file_note says so)."""
    found = 0
    for rel, text in files.items():
        try:
            found += len(evolve_blocks(text))
        except MarkerError as exc:
            name = where if where.is_file() else where / rel
            raise SeedError(f"{name}: {exc}; close every block with a '{BLOCK_END}' "
                            "line") from None
    if not found and not where.is_file():
        raise SeedError(f"{where}: no '{BLOCK_START}' / '{BLOCK_END}' markers in any file; put "
                        "the lines to evolve between the two comment lines")


def whole_file_note(seeds: tuple[Seed, ...]) -> str | None:
    """Returns the note for single-file seeds without markers (each evolves whole), or None."""
    whole = [seed.path.name if seed.path else seed.name for seed in seeds
             if not tree.is_tree(seed.code) and not evolve_blocks(seed.code)]
    if not whole:
        return None
    return (f"{', '.join(whole)}: no '{BLOCK_START}' / '{BLOCK_END}' markers, so the whole file "
            "evolves; put the lines to evolve between the two comment lines to keep the rest "
            "fixed")


def _as_tree(files: dict[str, str]) -> dict[str, str]:
    """Returns files, keeping a folder a folder: a lone program.py would read as a single file."""
    if set(files) == {tree.SINGLE}:
        raise SeedError(f"a folder holding only {tree.SINGLE} is a single-file program; put it "
                        "beside evaluator.py as initial_program.py instead")
    return files


def _inside(folder: Path, name: str, toml: Path) -> Path:
    """Returns folder/name when it stays inside folder; raises SeedError otherwise."""
    path = (folder / name).resolve()
    if path != folder and folder not in path.parents:
        raise SeedError(f"{toml}: {name!r} is outside the problem folder; starting programs live "
                        "in it")
    return path
