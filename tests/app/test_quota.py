"""The data root's quota: measured by walking the files, reused for a few seconds between uploads,
measured afresh after a deletion."""

from __future__ import annotations

import pytest

from app import staging
from app.errors import PayloadTooLarge
from app.staging import check_quota, data_root_usage, remove_with_rows, usage_bytes
from service.db.session import session_factory
from service.settings import Settings

KIB = 1024


@pytest.fixture
def quota_settings(settings: Settings) -> Settings:
    """A data root holding 600 KiB more than its database under a quota of 1 MiB more."""
    database = usage_bytes(settings.data_root)
    folder = settings.data_root / "datasets" / "a"
    folder.mkdir(parents=True)
    (folder / "image.nii.gz").write_bytes(b"x" * 600 * KIB)
    return settings.model_copy(update={"data_root_quota_gb": (database + KIB * KIB) / 2**30})


def test_usage_is_reused_then_measured_again(quota_settings: Settings, monkeypatch) -> None:
    root = quota_settings.data_root
    first = data_root_usage(root)
    assert first == usage_bytes(root)
    (root / "datasets" / "a" / "more").write_bytes(b"x" * 100 * KIB)
    assert data_root_usage(root) == first  # within USAGE_REUSE_S: no walk
    monkeypatch.setattr(staging, "USAGE_REUSE_S", 0.0)
    assert data_root_usage(root) == first + 100 * KIB


def test_admitted_bytes_count_until_the_next_measurement(quota_settings: Settings) -> None:
    check_quota(quota_settings, 300 * KIB)  # 600 + 300 KiB fit in 1 MiB
    with pytest.raises(PayloadTooLarge, match="over its quota"):
        check_quota(quota_settings, 300 * KIB)  # the first 300 KiB are counted though not yet on disk


def test_a_deletion_measures_afresh(quota_settings: Settings) -> None:
    with pytest.raises(PayloadTooLarge):
        check_quota(quota_settings, 600 * KIB)
    with session_factory(str(quota_settings.database_url))() as session:
        remove_with_rows(session, quota_settings, [quota_settings.data_root / "datasets" / "a"], [])
    check_quota(quota_settings, 600 * KIB)
