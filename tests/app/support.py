"""Factories for API tests: tiny generated datasets and their archives, rows made directly in the
database for states a test needs, and a snapshot of the data root and every table to prove that a
refused request changed nothing."""

from __future__ import annotations

import json
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path

from sqlalchemy import select

from core.synthetic import PRESETS, generate_dataset
from service import paths
from service.db.base import Base
from service.db.models import Model, Plan, new_id
from service.db.session import session_factory, session_scope
from service.settings import Settings

TINY_2D = replace(PRESETS["2d"], num_cases=4, shape=(1, 32, 32))
DATABASE_FILES = ("nnsvc.sqlite3", "broker.sqlite3")


def tiny_dataset(folder: Path, seed: int = 0, **overrides: object) -> Path:
    return generate_dataset(folder, replace(TINY_2D, **overrides), seed=seed)


def zip_folder(folder: Path, archive: Path, top: str | None = None) -> Path:
    """Zip the files under `folder`, below a top folder `top` when given."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as packed:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                name = path.relative_to(folder).as_posix()
                packed.write(path, f"{top}/{name}" if top else name)
    return archive


def tar_folder(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as packed:
        packed.add(folder, arcname=folder.name)
    return archive


def zip_members(archive: Path, members: dict[str, bytes]) -> Path:
    """A zip whose member names are written verbatim (for names zipfile.write would clean up)."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as packed:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            packed.writestr(info, data)
    return archive


def tar_with_symlink(archive: Path, dataset: Path) -> Path:
    with tarfile.open(archive, "w") as packed:
        packed.add(dataset, arcname="data")
        link = tarfile.TarInfo("data/imagesTr/link_0000.nii.gz")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        packed.addfile(link)
    return archive


def upload_archive(client, headers: dict[str, str], archive: Path, **fields: str):
    with archive.open("rb") as stream:
        return client.post(
            "/v1/datasets/upload", headers=headers, files={"archive": (archive.name, stream)}, data=fields
        )


def uploaded_dataset(client, headers: dict[str, str], tmp_path: Path, **overrides: object) -> dict:
    raw = tiny_dataset(tmp_path / "raw", **overrides)
    response = upload_archive(client, headers, zip_folder(raw, tmp_path / "dataset.zip"))
    assert response.status_code == 201, response.text
    return response.json()


def data_root_files(settings: Settings) -> dict[str, int]:
    """Every file under the data root with its size; the databases themselves are compared by rows."""
    return {
        path.relative_to(settings.data_root).as_posix(): path.stat().st_size
        for path in settings.data_root.rglob("*")
        if path.is_file() and not path.name.startswith(DATABASE_FILES)
    }


def table_rows(settings: Settings) -> dict[str, list[tuple]]:
    """Every row of every table; an API key's last_used_at is bookkeeping and left out."""
    rows = {}
    with session_factory(str(settings.database_url))() as session:
        for table in Base.metadata.sorted_tables:
            columns = [column for column in table.columns if column.name != "last_used_at"]
            rows[table.name] = sorted(map(tuple, session.execute(select(*columns)).all()), key=repr)
    return rows


def snapshot(settings: Settings) -> tuple[dict[str, int], dict[str, list[tuple]]]:
    return data_root_files(settings), table_rows(settings)


def add_model(settings: Settings, name: str = "tiny", num_input_channels: int = 1) -> Model:
    """A registry row (no files) for tests that only need the model's metadata."""
    with session_scope(str(settings.database_url)) as session:
        version = 1 + len(session.scalars(select(Model).where(Model.name == name)).all())
        model = Model(
            name=name,
            version=version,
            path=f"models/{name}-{version}",
            configurations=["2d"],
            folds=[0],
            num_input_channels=num_input_channels,
        )
        session.add(model)
    return model


def add_plan(settings: Settings, dataset_id: str, document: dict) -> Plan:
    """A finished plan: its row and plans.json, as a plan job leaves them."""
    plan_id = new_id()
    folder = paths.plan_dir(settings, dataset_id, plan_id)
    folder.mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps(document))
    with session_scope(str(settings.database_url)) as session:
        plan = Plan(
            id=plan_id, dataset_id=dataset_id, path=paths.relative(settings, folder), document=document
        )
        session.add(plan)
    return plan
