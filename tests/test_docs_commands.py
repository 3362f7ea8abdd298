"""Every command the README, docs/ and benchmarks/README.md show still runs as written: each
`evoforge …` names real (sub)commands and options, each `python -m benchmarks.…` names a real
module and options it declares."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer

from service.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "benchmarks" / "README.md",
        *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
INDENTED = re.compile(r"^ {4}(\S.*)$", re.MULTILINE)  # Markdown's indented code lines
EVOFORGE = re.compile(r"(?:^|&&|;|\s)(?:\.venv/bin/)?evoforge\s+(.*)")
# a module name, not a pattern such as `benchmarks.peers.<name>`
BENCHMARK = re.compile(r"python -m (benchmarks\.[\w.]*\w)(?![\w.<])(.*)")


def _commands(pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    """(doc file, command) for each match in a code block (fenced or indented)."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        blocks = [*FENCE.findall(text), *INDENTED.findall(text)]
        for block in blocks:
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split("  #")[0].split(" # ")[0]
                for part in re.split(r"\s(?:&&|\|\||\|)\s|;\s", line):
                    if m := pattern.search(part):
                        found.append((doc.name, m.group(0).strip().rstrip("\\ ")))
    return found


def _words(text: str) -> list[str]:
    """The command's words, square brackets (optional parts) and placeholders' dots removed."""
    return [w.strip("[]") for w in shlex.split(text.replace("[", " [").replace("|", " "))]


def _resolve(words: list[str]) -> tuple[Any, list[str]]:
    """The (Typer's own click) command the words name, and the words left after its name."""
    command = typer.main.get_command(app)
    while hasattr(command, "commands") and words and words[0] in command.commands:
        command, words = command.commands[words[0]], words[1:]
    return command, words


def test_the_docs_show_commands_at_all() -> None:
    assert len(_commands(EVOFORGE)) > 20 and len(_commands(BENCHMARK)) > 20


@pytest.mark.parametrize(("doc", "line"), _commands(EVOFORGE))
def test_each_evoforge_command_in_the_docs_names_real_commands_and_options(doc: str,
                                                                          line: str) -> None:
    words = _words(EVOFORGE.search(line).group(1))
    command, rest = _resolve(words)
    assert not hasattr(command, "commands"), f"{doc}: `{line}` names no command"
    known = {o for p in command.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
    unknown = [w.split("=")[0] for w in rest if w.startswith("--") and w.split("=")[0] not in known]
    assert unknown == [], f"{doc}: `{line}`: `evoforge {command.name}` has no {unknown}"


@pytest.mark.parametrize(("doc", "line"), _commands(BENCHMARK))
def test_each_benchmark_command_in_the_docs_names_a_module_and_its_flags(doc: str,
                                                                         line: str) -> None:
    m = BENCHMARK.search(line)
    module = m.group(1)
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, f"{doc}: `{line}`: no module {module}"
    source = Path(spec.origin).read_text()
    flags = [w.split("=")[0] for w in _words(m.group(2)) if w.startswith("--")]
    missing = [f for f in flags if f'"{f}"' not in source and f"'{f}'" not in source
               and f != "--help"]
    assert missing == [], f"{doc}: `{line}`: {module} declares no {missing}"
