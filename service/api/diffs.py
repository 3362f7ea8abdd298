"""Diffs between two programs, one per file: a single-file program is one file, program.py."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from evaluators import tree
from service.api.schemas import FileDiff


def file_diffs(old: Mapping[str, str], new: Mapping[str, str], old_id: int,
               new_id: int) -> list[FileDiff]:
    """Returns one entry per path of either program, in path order: its change and its unified
    diff (empty when unchanged). A single file is labelled `program ID` as before; files of a
    folder `a/PATH` and `b/PATH` (`/dev/null` for a side without it), as git writes them."""
    single = set(old) == set(new) == {tree.SINGLE}
    out = []
    for path in sorted(set(old) | set(new)):
        before, after = old.get(path), new.get(path)
        change = ("added" if before is None else "removed" if after is None
                  else "unchanged" if before == after else "changed")
        if single:
            labels = (f"program {old_id}", f"program {new_id}")
        else:
            labels = ("/dev/null" if before is None else f"a/{path}",
                      "/dev/null" if after is None else f"b/{path}")
        diff = "" if change == "unchanged" else "".join(difflib.unified_diff(
            (before or "").splitlines(keepends=True), (after or "").splitlines(keepends=True),
            *labels))
        out.append(FileDiff(path=path, change=change, diff=diff))
    return out


def joined(diffs: list[FileDiff]) -> str:
    """Returns the per-file diffs as one unified diff (what `patch` and diff viewers read)."""
    return "".join(d.diff if d.diff.endswith("\n") or not d.diff else d.diff + "\n"
                   for d in diffs)
