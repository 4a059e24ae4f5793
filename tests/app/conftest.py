"""An API per test on its own data root: SQLite migrated to head (copied from one migrated template),
the embedded broker, one key per role. The TestClient runs the app's lifespan, so the schema check and
housekeeping run as in production."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from core.pipeline import PlanOptions, plan_and_preprocess
from service.db.models import Role
from service.db.session import session_scope
from service.keys import create_key
from service.migrations import upgrade
from service.settings import Settings
from tests.app.support import tiny_dataset

DATABASE_FILE = "nnsvc.sqlite3"


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / DATABASE_FILE
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def plans_document(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Real plans of the tiny 2D dataset (planning only, no preprocessing)."""
    folder = tmp_path_factory.mktemp("plans")
    plans = plan_and_preprocess(
        tiny_dataset(folder / "raw"), folder / "out", PlanOptions(is_plan_only=True, workers=1)
    )
    return plans.to_json()


@pytest.fixture
def settings(tmp_path: Path, migrated_sqlite: Path) -> Settings:
    data_root = tmp_path / "data"
    data_root.mkdir()
    shutil.copy(migrated_sqlite, data_root / DATABASE_FILE)
    return Settings(data_root=data_root, max_upload_mb=64)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def keys(settings: Settings) -> dict[Role, dict[str, str]]:
    """Authorization headers of a fresh key per role."""
    headers = {}
    with session_scope(str(settings.database_url)) as session:
        for role in Role:
            _, plaintext = create_key(session, role, label=f"test {role}")
            headers[role] = {"Authorization": f"Bearer {plaintext}"}
    return headers
