"""Answer yield: how many raw completions become evaluated programs, old parser against new.

Replays a corpus of real completions (benchmarks.quality.answer_corpus; no generation here)
through the answer parser of another commit (default: where this branch left main, extracted with
`git archive` and run in a subprocess, so it is that commit's code and nothing else) and through
this tree's parser (repairs on), in the same command. An answer "becomes an evaluated program"
when the parser gives a child that compiles, changes only the EVOLVE-BLOCKs and differs from its
parent (an unchanged child is not evaluated) -- the same checks for both parsers. Prints per
problem: answers, evaluated programs and yield, old and new; "repaired": new children whose answer
took a repair (whole_file ones the old parser read too, silently); "gained" / "lost": evaluated
by the new parser only / the old only; "new lines": lines of a repaired child's EVOLVE-BLOCKs
found nowhere in its answer (a repair that wrote code; must be 0); rejections per reason;
children per repair. With --runs DB, also the share of repaired children among
the improvements (children that beat their run's best so far) of the runs in DB.

    .venv/bin/python -m benchmarks.quality.answer_yield [--corpus answer_corpus]
        [--old-rev merge-base] [--problems all | a,b] [--runs sqlite:///path/evoforge.db]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from io import BytesIO
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from benchmarks.harness.paths import OUT, ROOT
from benchmarks.harness.store import write_json
from benchmarks.quality.answer_corpus import corpus_path, read_corpus
from service.db import Database
from service.db.models import LLMSampleRow, ProblemRow, ProgramRow, RunRow
from service.edits.apply import apply_answer
from service.problems.blocks import block_text
from service.problems.direction import Direction

# Runs in the old tree: reads the corpus on stdin, writes one verdict per record on stdout.
_OLD_READER = """
import json, sys
from service.edits.apply import apply_answer
for line in sys.stdin:
    r = json.loads(line)
    e = apply_answer(r["parent_code"], r["text"], r["fmt"], r["finish_reason"] == "length")
    print(json.dumps({"ok": e.code is not None, "changed": bool(e.changed),
                      "rejection": e.rejection}))
"""
REASONS = (("SyntaxError", "syntax error"), ("the child does not compile", "syntax error"),
           ("answer cut off", "cut at max_tokens"), ("no code block", "no code"),
           ("no SEARCH/REPLACE", "no code"), ("empty answer", "no code"),
           ("the code block is empty", "no code"), ("the answer leaves", "no code"),
           ("the child changes code outside", "outside the blocks"),
           ("EVOLVE-BLOCK", "markers"), ("the answer has", "markers"),
           ("the program has", "markers"))


def reason(rejection: str | None, changed: bool) -> str:
    """Returns the short reason an answer gave no evaluated program ('' when it gave one)."""
    if rejection is None:
        return "" if changed else "unchanged child"
    return next((name for prefix, name in REASONS if rejection.startswith(prefix)), "other")


def old_verdicts(records: list[dict[str, Any]], rev: str) -> list[dict[str, Any]]:
    """Returns the old parser's verdicts: the `service` package of rev, run in a subprocess."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "service"],
                             capture_output=True, check=True).stdout
    with tempfile.TemporaryDirectory(prefix="answer-yield-") as tree:
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(tree)  # our own repository's archive
        lines = "".join(json.dumps(r) + "\n" for r in records)
        out = subprocess.run([sys.executable, "-c", _OLD_READER], input=lines, text=True,
                             capture_output=True, check=True, cwd=tree,
                             env={"PYTHONPATH": tree, "PATH": "/usr/bin:/bin"})
    return [json.loads(line) for line in out.stdout.splitlines()]


def new_verdicts(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Returns this tree's verdicts (repairs on)."""
    verdicts = []
    for r in records:
        e = apply_answer(r["parent_code"], r["text"], r["fmt"], r["finish_reason"] == "length")
        answer = {line.strip() for line in r["text"].split("\n")}
        new_lines = 0 if not (e.code and e.repair) else sum(
            line.strip() not in answer for line in block_text(e.code).split("\n")
            if line.strip() and not line.strip().startswith("#"))
        verdicts.append({"ok": e.code is not None, "changed": bool(e.changed),
                         "rejection": e.rejection, "repair": e.repair, "new_lines": new_lines})
    return verdicts


def tally(records: list[dict[str, Any]], old: list[dict[str, Any]],
          new: list[dict[str, Any]]) -> dict[str, Any]:
    """Returns per problem and total counts, reasons and repairs."""
    problems: dict[str, Counter] = {}
    reasons = {"old": Counter(), "new": Counter()}
    repairs, combos = Counter(), Counter()
    for r, o, n in zip(records, old, new, strict=True):
        c = problems.setdefault(r["problem"], Counter())
        c["answers"] += 1
        c["cut"] += r["finish_reason"] == "length"
        for side, v in (("old", o), ("new", n)):
            why = reason(v["rejection"], v["changed"])
            c[side] += not why
            if why:
                reasons[side][why] += 1
        if n["ok"] and n["repair"]:
            combos[n["repair"]] += 1
            repairs.update(n["repair"].split("+"))
            c["repaired"] += n["changed"]
        c["lost"] += o["ok"] and o["changed"] and not (n["ok"] and n["changed"])
        c["new lines"] += n["new_lines"]
        c["gained"] += (n["ok"] and n["changed"]) and not (o["ok"] and o["changed"])
    total = sum(problems.values(), Counter())
    return {"problems": {k: dict(v) for k, v in problems.items()}, "total": dict(total),
            "reasons": {k: dict(v) for k, v in reasons.items()}, "repairs": dict(repairs),
            "combos": dict(combos)}


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def show(result: dict[str, Any], console: Console) -> None:
    """Prints the tables."""
    t = Table(title=f"Answer yield: {result['corpus']} ({result['model']}), old = {result['rev']}")
    for col in ("problem", "answers", "cut", "old evaluated", "old yield", "new evaluated",
                "new yield", "repaired", "gained", "lost", "new lines"):
        t.add_column(col, justify="left" if col == "problem" else "right")
    rows = sorted(result["problems"].items()) + [("TOTAL", result["total"])]
    for name, c in rows:
        a = c["answers"]
        t.add_row(name, str(a), str(c.get("cut", 0)), str(c.get("old", 0)),
                  _pct(c.get("old", 0), a), str(c.get("new", 0)), _pct(c.get("new", 0), a),
                  str(c.get("repaired", 0)), str(c.get("gained", 0)), str(c.get("lost", 0)),
                  str(c.get("new lines", 0)))
    console.print(t)
    r = Table(title="Answers that gave no evaluated program, per reason")
    for col in ("reason", "old", "new"):
        r.add_column(col, justify="left" if col == "reason" else "right")
    old, new = result["reasons"]["old"], result["reasons"]["new"]
    for why in sorted(set(old) | set(new), key=lambda k: -old.get(k, 0)):
        r.add_row(why, str(old.get(why, 0)), str(new.get(why, 0)))
    console.print(r)
    p = Table(title="Repaired children, per repair (an answer may take several)")
    p.add_column("repair")
    p.add_column("children", justify="right")
    for name, n in sorted(result["repairs"].items(), key=lambda kv: -kv[1]):
        p.add_row(name, str(n))
    for name, n in sorted(result["combos"].items(), key=lambda kv: -kv[1]):
        p.add_row(f"[dim]as combination: {name}[/]", f"[dim]{n}[/]")
    console.print(p)


def repaired_improvements(url: str) -> dict[str, Any]:
    """Returns, over the runs in the database, the children that beat their run's best so far
    (in id order) and how many of them came from a repaired answer, per repair."""
    db = Database(url)
    found: dict[str, Any] = {"runs": 0, "children": 0, "repaired children": 0,
                             "failed children": 0, "repaired failed": 0, "improvements": 0,
                             "repaired improvements": 0, "repairs": Counter()}
    with db.session() as s:
        for run, direction in s.execute(select(RunRow, ProblemRow.direction).join(
                ProblemRow, ProblemRow.id == RunRow.problem_id)).all():
            found["runs"] += 1
            best = None
            rows = s.execute(select(ProgramRow, LLMSampleRow.repair).outerjoin(
                LLMSampleRow, LLMSampleRow.id == ProgramRow.sample_id).where(
                ProgramRow.run_id == run.id).order_by(ProgramRow.id)).all()
            for prog, repair in rows:
                if prog.kind == "mutation" and prog.status in ("ok", "failed"):
                    ok = prog.status == "ok"
                    found["children" if ok else "failed children"] += 1
                    found["repaired children" if ok else "repaired failed"] += repair is not None
                if prog.status != "ok" or not Direction(direction).better(prog.score, best):
                    continue
                if best is not None and prog.kind == "mutation":
                    found["improvements"] += 1
                    if repair:
                        found["repaired improvements"] += 1
                        found["repairs"][repair] += 1
                best = prog.score
    db.close()
    found["repairs"] = dict(found["repairs"])
    return found


def main() -> None:
    """Replays the corpus through both parsers and prints the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="answer_corpus", help="name under benchmarks/out/")
    parser.add_argument("--old-rev", default="merge-base",
                        help="git revision of the old parser (merge-base: where HEAD left main)")
    parser.add_argument("--problems", default="all", help="comma-separated problem names")
    parser.add_argument("--runs", help="database URL of finished runs: the share of repaired "
                        "children among their improvements")
    args = parser.parse_args()
    if args.old_rev == "merge-base":
        args.old_rev = subprocess.run(["git", "-C", str(ROOT), "merge-base", "HEAD", "main"],
                                      capture_output=True, text=True, check=True).stdout.strip()
    records = [r for r in read_corpus(corpus_path(args.corpus))
               if args.problems == "all" or r["problem"] in args.problems.split(",")]
    if not records:
        raise SystemExit(f"no corpus at {corpus_path(args.corpus)}: run "
                         "`python -m benchmarks.quality.answer_corpus` first")
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.old_rev],
                         capture_output=True, text=True, check=True).stdout.strip()
    result = {"corpus": args.corpus, "rev": rev,
              "model": records[0].get("model", "?"),
              **tally(records, old_verdicts(records, args.old_rev), new_verdicts(records))}
    if args.runs:
        result["runs"] = repaired_improvements(args.runs)
    show(result, Console(width=150))
    if args.runs:
        print(f"runs in {args.runs}: {json.dumps(result['runs'])}")
    print(f"written: {write_json(OUT / f'answer_yield_{args.corpus}.json', result)}")


if __name__ == "__main__":
    main()
