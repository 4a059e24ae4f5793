"""Uploaded archives (.zip, .tar, .tar.gz and tarfile's other compressions), checked before anything is
unpacked: every member must be a plain file or folder whose path stays inside the archive (no absolute
path, no `..`, no link, no device), and the whole must not expand past a ratio of its packed size.

All members are checked and every offender is listed in one refusal. Unpacking then copies member by
member with a running byte count, so headers that lie about sizes cannot get past the limit either.
"""

from __future__ import annotations

import re
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal

from app.errors import Unprocessable
from app.schemas.common import Problem

ArchiveKind = Literal["zip", "tar"]
COPY_CHUNK_BYTES = 1 << 20
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class Member:
    name: str  # normalized, relative, '/'-separated
    size_bytes: int
    is_dir: bool


@dataclass(frozen=True)
class Archive:
    path: Path
    kind: ArchiveKind
    members: tuple[Member, ...]

    @property
    def unpacked_bytes(self) -> int:
        return sum(member.size_bytes for member in self.members)


def archive_kind(path: Path) -> ArchiveKind | None:
    if zipfile.is_zipfile(path):
        return "zip"
    return "tar" if tarfile.is_tarfile(path) else None


def check_archive(path: Path, max_expansion_ratio: float, field: str) -> Archive:
    """List and check every member; raises Unprocessable naming every bad member (and the ratio)."""
    kind = archive_kind(path)
    if kind is None:
        raise Unprocessable(
            Problem(loc=["body", field], problem="not a .zip, .tar or .tar.gz archive", kind="not_an_archive")
        )
    problems: list[Problem] = []
    members: list[Member] = []
    seen: set[str] = set()
    try:
        for raw_name, size, is_dir, wrong in _entries(path, kind):
            member = _checked_member(raw_name, size, is_dir, wrong, field, problems)
            if member is None:
                continue
            if member.name in seen and not member.is_dir:
                problems.append(_bad(field, raw_name, "appears twice in the archive", "duplicate_member"))
            seen.add(member.name)
            members.append(member)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as error:
        raise Unprocessable(
            Problem(loc=["body", field], problem=f"the archive is damaged: {error}", kind="damaged_archive")
        ) from None
    archive = Archive(path, kind, tuple(members))
    packed = max(path.stat().st_size, 1)
    if archive.unpacked_bytes > max_expansion_ratio * packed:
        problems.append(
            Problem(
                loc=["body", field],
                problem=f"unpacks to {archive.unpacked_bytes} bytes, {archive.unpacked_bytes / packed:.0f} "
                f"times its {packed} packed bytes; the limit is {max_expansion_ratio:g} times",
                kind="expansion_ratio",
            )
        )
    if problems:
        raise Unprocessable(problems, message=f"{len(problems)} problem(s) with the archive {field!r}")
    return archive


def _entries(path: Path, kind: ArchiveKind) -> Iterator[tuple[str, int, bool, str | None]]:
    """(name, size, is a folder, what is wrong with its type or None) for every member, in order."""
    if kind == "zip":
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                wrong = "is a symbolic link" if stat.S_ISLNK(info.external_attr >> 16) else None
                if info.flag_bits & 0x1:
                    wrong = "is encrypted"
                yield info.filename, info.file_size, info.is_dir(), wrong
        return
    with tarfile.open(path, "r:*") as archive:
        for info in archive:
            wrong = None
            if info.issym() or info.islnk():
                wrong = "is a link"
            elif not (info.isfile() or info.isdir()):
                wrong = "is not a plain file or folder"
            yield info.name, info.size if info.isfile() else 0, info.isdir(), wrong


def _clean_name(raw_name: str) -> str:
    parts = PurePosixPath(raw_name.replace("\\", "/")).parts
    return "/".join(part for part in parts if part not in ("", ".", "/"))


def _checked_member(
    raw_name: str, size: int, is_dir: bool, wrong: str | None, field: str, problems: list[Problem]
) -> Member | None:
    name = raw_name.replace("\\", "/")
    if name.startswith("/") or _WINDOWS_DRIVE.match(name):
        problems.append(_bad(field, raw_name, "has an absolute path", "absolute_path"))
    elif ".." in PurePosixPath(name).parts:
        problems.append(_bad(field, raw_name, "escapes the archive's root with '..'", "path_escape"))
    elif wrong is not None:
        problems.append(_bad(field, raw_name, wrong, "not_a_plain_file"))
    elif clean := _clean_name(raw_name):
        return Member(clean, size, is_dir)
    return None


def _bad(field: str, name: str, problem: str, kind: str) -> Problem:
    return Problem(loc=["body", field, name], problem=f"{name}: {problem}", kind=kind)


class _BeyondDeclaredSize(Exception):
    pass


def unpack(archive: Archive, destination: Path, max_bytes: int, field: str) -> None:
    """Copy every member of a checked archive under `destination`, refusing past `max_bytes` written;
    a member that cannot be unpacked (corrupt data, a file where a folder must go) is a 422 too."""
    remaining, name = max_bytes, ""
    try:
        for name, is_dir, source in _open_members(archive):
            remaining -= _copy_member(destination / _clean_name(name), is_dir, source, remaining)
    except _BeyondDeclaredSize:
        raise Unprocessable(
            f"{name}: the archive unpacks to more than its headers declare",
            loc=["body", field, name],
            kind="expansion_ratio",
        ) from None
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError) as error:
        raise Unprocessable(
            f"{name or 'the archive'}: cannot be unpacked ({error})",
            loc=["body", field, name],
            kind="damaged_archive",
        ) from None


def _copy_member(target: Path, is_dir: bool, source: BinaryIO | None, budget: int) -> int:
    if is_dir or source is None:
        target.mkdir(parents=True, exist_ok=True)
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    copied = 0
    with source, target.open("wb") as sink:
        while chunk := source.read(COPY_CHUNK_BYTES):
            copied += len(chunk)
            if copied > budget:
                raise _BeyondDeclaredSize
            sink.write(chunk)
    return copied


def _open_members(archive: Archive) -> Iterator[tuple[str, bool, BinaryIO | None]]:
    if archive.kind == "zip":
        with zipfile.ZipFile(archive.path) as opened:
            for info in opened.infolist():
                yield info.filename, info.is_dir(), None if info.is_dir() else opened.open(info)
        return
    with tarfile.open(archive.path, "r:*") as opened:
        for info in opened:
            yield info.name, info.isdir(), opened.extractfile(info) if info.isfile() else None
