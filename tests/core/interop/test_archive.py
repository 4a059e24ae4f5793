"""Export zips are uploads: every member path is checked before anything is unpacked."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from core.errors import ProblemsError
from core.interop import import_nnunet_model
from core.interop.archive import ArchiveError, unpack_zip
from tests.core.interop.support import DATASET, tiny_plans, write_model_folder, zip_dataset


def symlink_member(name: str, target: str) -> tuple[zipfile.ZipInfo, str]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target


def test_lists_every_member_that_could_leave_the_folder(tmp_path: Path) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr(f"{DATASET}/plans.json", "{}")
        out.writestr("../outside.txt", "x")
        out.writestr("/etc/cron.d/job", "x")
        out.writestr("C:/Windows/evil.dll", "x")
        out.writestr(*symlink_member(f"{DATASET}/link", "/etc/passwd"))
    target = tmp_path / "unpacked"
    with pytest.raises(ArchiveError) as raised:
        unpack_zip(archive, target, lambda name: True)
    assert [p.split(": ", 1)[1] for p in raised.value.problems] == [
        "member '../outside.txt' escapes the archive's folder with '..'",
        "member '/etc/cron.d/job' has an absolute path",
        "member 'C:/Windows/evil.dll' has an absolute path",
        f"member '{DATASET}/link' is a symbolic link",
    ]
    assert not target.exists() and not (tmp_path / "outside.txt").exists()


def test_unpacks_only_wanted_members_but_every_folder(tmp_path: Path) -> None:
    archive = tmp_path / "good.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("model/plans.json", "{}")
        out.writestr("model/fold_0/progress.png", "png")
    unpack_zip(archive, tmp_path / "out", lambda name: name.name == "plans.json")
    assert (tmp_path / "out" / "model" / "plans.json").read_text() == "{}"
    assert (tmp_path / "out" / "model" / "fold_0").is_dir()
    assert not (tmp_path / "out" / "model" / "fold_0" / "progress.png").exists()


def test_refuses_more_bytes_than_allowed(tmp_path: Path) -> None:
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("model/plans.json", "0" * 10_000)
    with pytest.raises(ArchiveError, match="more than the 1000 allowed"):
        unpack_zip(archive, tmp_path / "out", lambda name: isinstance(name, PurePosixPath), 1000)


def test_an_import_of_a_bad_zip_writes_nothing(tmp_path: Path) -> None:
    dataset = tmp_path / "results" / DATASET
    write_model_folder(dataset, tiny_plans(), "2d", folds=(0,))
    archive = zip_dataset(dataset, tmp_path / "model.zip")
    with zipfile.ZipFile(archive, "a") as out:
        out.writestr(f"{DATASET}/../../escape.txt", "x")
    destination = tmp_path / "imported"
    with pytest.raises(ProblemsError, match="escapes the archive's folder"):
        import_nnunet_model(archive, destination)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.zip", "results"]
