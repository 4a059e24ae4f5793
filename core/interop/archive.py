"""The zip that `nnUNetv2_export_model_to_zip` writes, opened as an untrusted upload.

Every member name is checked before anything is unpacked, and all offenders are listed in one
refusal: no absolute path or drive letter, no `..` part, no symbolic link, no encrypted member, no
name given twice, and no more than `max_unpacked_bytes` in all. Only the members an import reads are
unpacked (the model's JSON files, postprocessing files and the chosen checkpoints); the others only
leave their folders behind, so that a fold folder without its checkpoint is still seen and refused.
Each copy counts the bytes it writes, so a member whose header lies about its size cannot get past
the limit either.
"""

from __future__ import annotations

import re
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from core.errors import ProblemsError

COPY_CHUNK_BYTES = 1 << 20
DEFAULT_MAX_UNPACKED_BYTES = 64 << 30
_DRIVE = re.compile(r"^[A-Za-z]:")


class ArchiveError(ProblemsError):
    """An archive that is damaged, or whose members could write outside the folder it unpacks into."""

    hint = "write the zip again with nnUNetv2_export_model_to_zip, or import the results folder itself"


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        return "has an absolute path"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "escapes the archive's folder with '..'"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "is a symbolic link"
    if info.flag_bits & 0x1:
        return "is encrypted"
    return None


def checked_members(archive: zipfile.ZipFile, source: Path, max_unpacked_bytes: int) -> list[zipfile.ZipInfo]:
    """Every member, checked; `ArchiveError` lists each offending member."""
    problems, seen, total = [], set(), 0
    for info in archive.infolist():
        problem = _member_problem(info)
        if problem is None and info.filename in seen:
            problem = "appears twice"
        if problem is not None:
            problems.append(f"{source.name}: member {info.filename!r} {problem}")
        seen.add(info.filename)
        total += info.file_size
    if total > max_unpacked_bytes:
        problems.append(
            f"{source.name}: unpacks to {total} bytes, more than the {max_unpacked_bytes} allowed"
        )
    if problems:
        raise ArchiveError(problems)
    return archive.infolist()


def _copy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: int) -> int:
    """Copy one member, at most `budget` bytes; the bytes written."""
    written = 0
    with archive.open(info) as stream, target.open("wb") as out:
        while chunk := stream.read(COPY_CHUNK_BYTES):
            written += len(chunk)
            if written > budget:
                raise ArchiveError(f"member {info.filename!r} unpacks to more bytes than allowed")
            out.write(chunk)
    return written


def unpack_zip(
    source: Path,
    target: Path,
    is_wanted: Callable[[PurePosixPath], bool],
    max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES,
) -> None:
    """Unpack the members `is_wanted` selects from the checked zip `source` into `target`; every
    member's folder is created."""
    try:
        with zipfile.ZipFile(source) as archive:
            budget = max_unpacked_bytes
            root = target.resolve()
            for info in checked_members(archive, source, max_unpacked_bytes):
                name = PurePosixPath(info.filename.replace("\\", "/"))
                path = (target / name).resolve()
                if path == root:
                    continue  # "./": the archive's own folder
                if root not in path.parents:
                    raise ArchiveError(f"{source.name}: member {info.filename!r} leaves the unpack folder")
                if info.is_dir():
                    path.mkdir(parents=True, exist_ok=True)
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                if is_wanted(name):
                    budget -= _copy_member(archive, info, path, budget)
    except zipfile.BadZipFile as error:
        raise ArchiveError(f"{source.name}: not a readable zip archive ({error})") from None


def is_zip(path: Path) -> bool:
    return Path(path).is_file() and zipfile.is_zipfile(path)
