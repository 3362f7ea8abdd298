"""Problem uploads: a JSON map of files or a zip/tar archive, size-limited, with no path escapes."""

from __future__ import annotations

import io
import tarfile
import tomllib
import zipfile
from pathlib import PurePosixPath

from service.api.errors import ApiError

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
ALLOWED_SUFFIXES = (".py", ".toml", ".yaml", ".md", ".txt")
REQUIRED = ("initial_program.py", "evaluator.py")
FILE_KEYS = ("initial_program", "evaluator", "scorer")  # [problem] keys that name a file


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
        if len(path.parts) > 1:
            raise _invalid(name, "files in sub-folders are not kept with the problem",
                           "put every file at the top of the problem folder")
        if path.suffix not in ALLOWED_SUFFIXES:
            raise _invalid(name, f"file type {path.suffix or '(none)'} is not kept",
                           f"give only {', '.join(ALLOWED_SUFFIXES)} files")
        out[path.name] = text
    if "problem.toml" not in out and "config.yaml" not in out:
        for req in REQUIRED:
            if req not in out:
                raise _invalid(req, "missing", f"add {req} to the problem's files")
    _own_files_only(out)
    return out


def _own_files_only(files: dict[str, str]) -> None:
    """Refuses a problem.toml whose [problem] names a file outside the upload (a path elsewhere
    on the server would be read, or run, as the problem's)."""
    try:
        meta = tomllib.loads(files.get("problem.toml", "")).get("problem", {})
    except tomllib.TOMLDecodeError:
        return  # the problem's own checks name the syntax error
    for key in FILE_KEYS:
        value = meta.get(key) if isinstance(meta, dict) else None
        if value is not None and (not isinstance(value, str) or value not in files):
            raise _invalid("problem.toml", f"[problem] {key} = {value!r} is not a file of this "
                           "upload (a problem reads only its own files)",
                           f"name one of {', '.join(sorted(files))}, or add the file")


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
