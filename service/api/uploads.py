"""Problem uploads: a JSON map of files or a zip/tar archive, size-limited, with no path escapes;
a program that is a folder comes as initial_program/PATH (or initial_programs/NAME/PATH)."""

from __future__ import annotations

import io
import stat
import tarfile
import tomllib
import zipfile
from pathlib import PurePosixPath

from evaluators import tree
from service.api.errors import ApiError

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
ALLOWED_SUFFIXES = (".py", ".toml", ".yaml", ".md", ".txt")
REQUIRED = ("initial_program.py", "evaluator.py")
FILE_KEYS = ("initial_program", "evaluator", "scorer")  # [problem] keys that name a file
PROGRAM_DIR, SEEDS_DIR = "initial_program", "initial_programs"  # the only folders kept: programs
TREE_RULES = ("paths relative to the program folder, no hidden files, at most "
              f"{tree.MAX_FILES} files and {tree.MAX_BYTES} bytes per program")


def _invalid(file: str, message: str, fix: str) -> ApiError:
    return ApiError(422, f"{file}: {message}; fix: {fix}", "invalid_problem",
                    [{"file": file, "message": message, "fix": fix}])


def check_files(files: dict[str, str], limit: int = MAX_UPLOAD_BYTES) -> dict[str, str]:
    """Returns the files with names normalised, or raises a 422 naming the file and the fix."""
    total = sum(len(text.encode()) for text in files.values())
    if total > limit:
        raise ApiError(413, f"the problem's files hold {total} bytes, over the {limit}-byte "
                       "limit; leave data out or make it smaller", "too_large")
    out: dict[str, str] = {}
    for name, text in files.items():
        path = PurePosixPath(name.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts or not path.parts:
            raise _invalid(name, "path escapes the problem folder",
                           "use plain file names such as evaluator.py")
        if len(path.parts) > 1 and path.parts[0] not in (PROGRAM_DIR, SEEDS_DIR):
            raise _invalid(name, "files in sub-folders are not kept with the problem",
                           "put every file at the top of the problem folder; only a program "
                           f"that is a folder lives in {PROGRAM_DIR}/ (or {SEEDS_DIR}/NAME/)")
        if len(path.parts) == 1 and path.suffix not in ALLOWED_SUFFIXES:
            raise _invalid(name, f"file type {path.suffix or '(none)'} is not kept",
                           f"give only {', '.join(ALLOWED_SUFFIXES)} files")
        out[str(path)] = text
    _check_programs(out)
    if "problem.toml" not in out and "config.yaml" not in out:
        for req in REQUIRED:
            if req not in out and not (req == "initial_program.py" and any(
                    name.startswith((f"{PROGRAM_DIR}/", f"{SEEDS_DIR}/")) for name in out)):
                raise _invalid(req, "missing", f"add {req} to the problem's files")
    _own_files_only(out)
    return out


def _check_programs(files: dict[str, str]) -> None:
    """Raises a 422 naming the file unless every program folder of the upload (initial_program/,
    initial_programs/NAME/) is a program tree within evoforge's limits (evaluators/tree.py)."""
    programs: dict[str, dict[str, str]] = {}
    for name, text in files.items():
        parts = PurePosixPath(name).parts
        if parts[0] not in (PROGRAM_DIR, SEEDS_DIR) or len(parts) == 1:
            continue
        depth = 1 if parts[0] == PROGRAM_DIR else 2
        if len(parts) == depth:  # initial_programs/NAME: one starting program that is a file
            root, rel = name, PurePosixPath(parts[-1]).name
        else:
            root, rel = "/".join(parts[:depth]), "/".join(parts[depth:])
        try:
            tree.check_path(rel)
        except tree.TreeError as exc:
            raise _invalid(name, str(exc), f"keep to the program tree rules: {TREE_RULES}") \
                from None
        programs.setdefault(root, {})[rel] = text
    for root, program in programs.items():
        try:
            tree.check(program)
        except tree.TreeError as exc:
            raise _invalid(root, str(exc), f"keep to the program tree rules: {TREE_RULES}") \
                from None


def _own_files_only(files: dict[str, str]) -> None:
    """Refuses a problem.toml whose [problem] names a file outside the upload (a path elsewhere
    on the server would be read, or run, as the problem's)."""
    try:
        meta = tomllib.loads(files.get("problem.toml", "")).get("problem", {})
    except tomllib.TOMLDecodeError:
        return  # the problem's own checks name the syntax error
    if not isinstance(meta, dict):
        return
    named = [(key, meta.get(key)) for key in FILE_KEYS]
    listed = meta.get("initial_programs")
    named += [("initial_programs", v) for v in (listed if isinstance(listed, list) else [listed])]
    for key, value in named:
        if value is not None and not (isinstance(value, str) and _holds(files, value)):
            raise _invalid("problem.toml", f"[problem] {key} = {value!r} is not a file or "
                           "program folder of this upload (a problem reads only its own files)",
                           f"name one of {', '.join(sorted(_names(files)))}, or add the file")


def _holds(files: dict[str, str], name: str) -> bool:
    """Returns True when name is a file of the upload or a folder holding some of its files."""
    return name in files or any(f.startswith(name.rstrip("/") + "/") for f in files)


def _names(files: dict[str, str]) -> set[str]:
    """Returns the top-level names of the upload: its files and its program folders."""
    return {f.split("/")[0] + ("/" if "/" in f else "") for f in files}


def read_archive(data: bytes, filename: str, limit: int = MAX_UPLOAD_BYTES) -> dict[str, str]:
    """Returns the text files of a zip or tar(.gz) archive, stripping one common top folder."""
    if len(data) > limit:
        raise ApiError(413, f"{filename}: {len(data)} bytes, over the {limit}-byte upload limit; "
                       "upload a smaller archive", "too_large")
    members = _zip(data, limit) if zipfile.is_zipfile(io.BytesIO(data)) else _tar(data, filename,
                                                                                  limit)
    names = [PurePosixPath(n.replace("\\", "/")) for n in members]
    tops = {p.parts[0] for p in names if len(p.parts) > 1}
    if len(tops) == 1 and all(len(p.parts) > 1 for p in names) and ".." not in tops:
        members = {str(PurePosixPath(*PurePosixPath(n).parts[1:])): t for n, t in members.items()}
    return members


def _decode(name: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid(name, "not UTF-8 text", "give text files only") from None


def _zip(data: bytes, limit: int) -> dict[str, str]:
    files: dict[str, str] = {}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        total = sum(i.file_size for i in infos)
        if total > limit:
            raise ApiError(413, f"the archive unpacks to {total} bytes, over the {limit}-byte "
                           "limit; upload a smaller problem", "too_large")
        for info in infos:
            _safe_name(info.filename)
            kind = stat.S_IFMT(info.external_attr >> 16)  # 0: an archiver that keeps no type
            if kind and kind != stat.S_IFREG:
                raise _invalid(info.filename, "links and special files are not accepted",
                               "archive plain files only")
            files[info.filename] = _decode(info.filename, zf.read(info)[:limit + 1])
    return files


def _tar(data: bytes, filename: str, limit: int) -> dict[str, str]:
    try:
        tf = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")  # noqa: SIM115 - closed below
    except tarfile.TarError:
        raise _invalid(filename, "not a zip or tar archive",
                       "upload a .zip, .tar or .tar.gz of the problem folder") from None
    files: dict[str, str] = {}
    total = 0
    with tf:
        for member in tf.getmembers():
            _safe_name(member.name)
            if member.isdir():
                continue
            if not member.isfile():
                raise _invalid(member.name, "links and special files are not accepted",
                               "archive plain files only")
            total += member.size
            if total > limit:
                raise ApiError(413, f"the archive unpacks to over {limit} bytes; upload a "
                               "smaller problem", "too_large")
            handle = tf.extractfile(member)
            files[member.name] = _decode(member.name, handle.read() if handle else b"")
    return files


def _safe_name(name: str) -> None:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        raise _invalid(name, "path escapes the problem folder (path traversal)",
                       "archive the problem folder with relative paths only")
