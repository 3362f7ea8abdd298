"""What the wheel carries from outside the package tree; pyproject.toml declares everything else.

setuptools' build_py, extended to copy into the build tree (never into the checkout):
- migrations/ -> service/db/migrations (Alembic; service.db.session looks there first),
- problems/ -> service/problems/data (the shipped problems, run by name),
- the files service/web/index.html loads from node_modules, with their packages' licences, after
  `npm ci` from the pinned package-lock.json when node_modules lacks them or holds other versions.
An editable install builds none of this: it reads all three from the checkout.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.errors import SetupError

ROOT = Path(__file__).resolve().parent
WEB = ROOT / "service" / "web"
TREES = {"migrations": "service/db/migrations", "problems": "service/problems/data"}
SKIP = shutil.ignore_patterns("__pycache__", "*.py[co]", ".*")
LOADED = re.compile(r'(?:src|href)="(node_modules/[^"]+)"')
PACKAGE = re.compile(r"node_modules/((?:@[^/]+/)?[^/]+)/")


def web_files() -> list[str]:
    """Returns the node_modules files index.html loads and the licences of their packages, as
    paths relative to service/web, installing them first when they are missing or stale."""
    loaded = sorted(set(LOADED.findall((WEB / "index.html").read_text())))
    packages = sorted({PACKAGE.match(f).group(0).rstrip("/") for f in loaded})
    if not _installed(packages, loaded):
        _npm_ci()
    licences = [p.relative_to(WEB).as_posix() for pkg in packages
                for p in (WEB / pkg).glob("LICEN[CS]E*")]
    return loaded + sorted(licences)


def _installed(packages: list[str], files: list[str]) -> bool:
    """Returns True when node_modules holds every file at the version package-lock.json pins."""
    lock = json.loads((WEB / "package-lock.json").read_text())["packages"]
    for pkg in packages:
        meta = WEB / pkg / "package.json"
        if not meta.is_file() or json.loads(meta.read_text())["version"] != lock[pkg]["version"]:
            return False
    return all((WEB / f).is_file() for f in files)


def _npm_ci() -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise SetupError("building evoforge needs npm: the web UI's libraries come from "
                         "service/web/package-lock.json. Install Node.js and npm, or run "
                         "`npm ci --prefix service/web` where npm exists and build again")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--prefix", str(WEB)], check=True)


class BuildPy(build_py):
    """build_py plus the migrations, the shipped problems and the UI's libraries."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        build = Path(self.build_lib)
        for source, dest in TREES.items():
            shutil.rmtree(build / dest, ignore_errors=True)
            shutil.copytree(ROOT / source, build / dest, ignore=SKIP)
        for rel in web_files():
            target = build / "service" / "web" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(WEB / rel, target)


setup(cmdclass={"build_py": BuildPy})
