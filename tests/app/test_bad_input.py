"""Bad input, one kind per test: each is refused with a 4xx whose JSON body names every problem, and
leaves the data root and every table exactly as they were."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
import SimpleITK as sitk
from fastapi.testclient import TestClient

from app.main import create_app
from service.db.models import Role
from service.db.session import session_scope
from service.keys import authenticate, revoke_key
from service.settings import Settings
from tests.app.support import (
    add_model,
    add_plan,
    snapshot,
    tar_with_symlink,
    tiny_dataset,
    upload_archive,
    uploaded_dataset,
    zip_folder,
    zip_members,
)


def assert_refused(
    settings: Settings, send: Callable[[], httpx.Response], status: int, *fragments: str
) -> list[dict]:
    """Send; expect `status`, a body listing problems that mention every fragment, and no change."""
    before = snapshot(settings)
    response = send()
    assert response.status_code == status, response.text
    body = response.json()
    assert body["message"] and body["detail"], body
    text = "\n".join(item["problem"] for item in body["detail"])
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"
    assert snapshot(settings) == before
    return body["detail"]


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    return tiny_dataset(tmp_path / "Dataset001_Tiny")


def rewrite(path: Path, change: Callable[[sitk.Image], sitk.Image]) -> None:
    sitk.WriteImage(change(sitk.ReadImage(str(path))), str(path))


def with_voxel(value: float, pixel_type: int) -> Callable[[sitk.Image], sitk.Image]:
    def change(image: sitk.Image) -> sitk.Image:
        changed = sitk.Cast(image, pixel_type)
        array = sitk.GetArrayFromImage(changed)
        array.flat[0] = value
        result = sitk.GetImageFromArray(array)
        result.CopyInformation(image)
        return result

    return change


def test_not_an_archive(client, keys, settings, tmp_path):
    text = tmp_path / "notes.zip"
    text.write_text("these are not the files you are looking for")
    detail = assert_refused(
        settings, lambda: upload_archive(client, keys[Role.trainer], text), 422, "not a .zip, .tar or .tar.gz"
    )
    assert detail[0]["kind"] == "not_an_archive"


def test_paths_escaping_the_archive_root_are_all_named(client, keys, settings, tmp_path):
    archive = zip_members(
        tmp_path / "evil.zip",
        {"dataset.json": b"{}", "../../outside.txt": b"x", "/etc/cron.d/job": b"x", "a/../../b.txt": b"x"},
    )
    detail = assert_refused(
        settings,
        lambda: upload_archive(client, keys[Role.trainer], archive),
        422,
        "../../outside.txt: escapes",
        "/etc/cron.d/job: has an absolute path",
        "a/../../b.txt: escapes",
    )
    assert {item["kind"] for item in detail} == {"path_escape", "absolute_path"}
    assert not (settings.data_root.parent / "outside.txt").exists()


def test_an_archive_whose_members_collide(client, keys, settings, tmp_path):
    archive = zip_members(
        tmp_path / "clash.zip", {"dataset.json": b"{}", "a": b"file", "a/b": b"under a file"}
    )
    detail = assert_refused(
        settings, lambda: upload_archive(client, keys[Role.trainer], archive), 422, "a/b: cannot be unpacked"
    )
    assert detail[0]["kind"] == "damaged_archive"


def test_a_link_inside_the_archive(client, keys, settings, tmp_path, raw):
    archive = tar_with_symlink(tmp_path / "linked.tar", raw)
    assert_refused(settings, lambda: upload_archive(client, keys[Role.trainer], archive), 422, "is a link")


def test_an_archive_that_expands_beyond_the_limit(client, keys, settings, tmp_path):
    archive = zip_members(tmp_path / "bomb.zip", {"dataset.json": b"{}", "zeros.bin": bytes(8 << 20)})
    detail = assert_refused(
        settings, lambda: upload_archive(client, keys[Role.trainer], archive), 422, "the limit is 20 times"
    )
    assert detail[0]["kind"] == "expansion_ratio"


def test_an_upload_over_the_size_limit(keys, settings, tmp_path):
    big = tmp_path / "big.zip"
    big.write_bytes(np.random.default_rng(0).bytes(3 << 20))
    small_limit = settings.model_copy(update={"max_upload_mb": 1})
    with TestClient(create_app(small_limit)) as client:
        assert_refused(
            settings,
            lambda: upload_archive(client, keys[Role.trainer], big),
            413,
            "larger than the limit of 1 MiB",
        )


def test_an_upload_over_the_data_root_quota(keys, settings, tmp_path, raw):
    archive = zip_folder(raw, tmp_path / "dataset.zip")
    tiny_quota = settings.model_copy(update={"data_root_quota_gb": 1e-5})
    with TestClient(create_app(tiny_quota)) as client:
        detail = assert_refused(
            settings, lambda: upload_archive(client, keys[Role.trainer], archive), 413, "over its quota"
        )
    assert detail[0]["kind"] == "quota"


def test_no_dataset_json(client, keys, settings, tmp_path, raw):
    (raw / "dataset.json").unlink()
    archive = zip_folder(raw, tmp_path / "dataset.zip", top="Dataset001_Tiny")
    assert_refused(
        settings, lambda: upload_archive(client, keys[Role.trainer], archive), 422, "no dataset.json"
    )


def test_an_invalid_dataset_json_names_every_mistake(client, keys, settings, tmp_path, raw):
    (raw / "dataset.json").write_text(
        json.dumps(
            {"channel_names": {"0": "x"}, "labels": {"organ": 1}, "numTraining": "four", "file_ending": "nii"}
        )
    )
    detail = assert_refused(
        settings,
        lambda: upload_archive(client, keys[Role.trainer], zip_folder(raw, tmp_path / "d.zip")),
        422,
        "'background' to 0",
        "numTraining must be a non-negative integer",
        "file_ending must look like",
    )
    assert {item["kind"] for item in detail} == {"invalid_dataset_json"}


def test_mismatched_geometry(client, keys, settings, tmp_path, raw):
    def respace(image: sitk.Image) -> sitk.Image:
        image.SetSpacing([2 * s for s in image.GetSpacing()])
        return image

    rewrite(raw / "labelsTr" / "case_001.nii.gz", respace)
    detail = assert_refused(
        settings,
        lambda: upload_archive(client, keys[Role.trainer], zip_folder(raw, tmp_path / "d.zip")),
        422,
        "spacing",
    )
    assert detail[0]["kind"] == "spacing_mismatch"
    assert detail[0]["loc"] == ["body", "archive", "labelsTr/case_001.nii.gz"]


def test_undeclared_label_values(client, keys, settings, tmp_path, raw):
    rewrite(raw / "labelsTr" / "case_002.nii.gz", with_voxel(7, sitk.sitkUInt8))
    detail = assert_refused(
        settings,
        lambda: upload_archive(client, keys[Role.trainer], zip_folder(raw, tmp_path / "d.zip")),
        422,
        "label value(s) [7] not declared",
    )
    assert detail[0]["kind"] == "undeclared_label"


def test_nan_voxels_and_a_second_problem_are_both_named(client, keys, settings, tmp_path):
    # MetaImage: SimpleITK's NIfTI writer turns NaN into 0 and could not plant one.
    raw = tiny_dataset(tmp_path / "Dataset002_Mha", file_ending=".mha")
    rewrite(raw / "imagesTr" / "case_000_0000.mha", with_voxel(np.nan, sitk.sitkFloat32))
    (raw / "labelsTr" / "case_003.mha").unlink()
    detail = assert_refused(
        settings,
        lambda: upload_archive(client, keys[Role.trainer], zip_folder(raw, tmp_path / "d.zip")),
        422,
        "1 NaN or inf voxel(s)",
        "labelsTr/case_003.mha is missing",
    )
    assert {item["kind"] for item in detail} == {"non_finite_voxels", "missing_label"}


def test_a_prediction_with_the_wrong_number_of_channels(client, keys, settings, raw):
    add_model(settings, name="two", num_input_channels=2)
    image = raw / "imagesTr" / "case_000_0000.nii.gz"

    def send() -> httpx.Response:
        with image.open("rb") as stream:
            return client.post(
                "/v1/predictions",
                headers=keys[Role.predictor],
                data={"model": "two:latest", "folds": "3"},
                files=[("channels", (image.name, stream))],
            )

    detail = assert_refused(settings, send, 422, "takes 2 channel file(s)", "no fold(s) [3]")
    assert detail[0]["loc"] == ["body", "channels"]


def test_an_unknown_model(client, keys, settings, raw):
    image = raw / "imagesTr" / "case_000_0000.nii.gz"

    def send() -> httpx.Response:
        with image.open("rb") as stream:
            return client.post(
                "/v1/predictions",
                headers=keys[Role.predictor],
                data={"model": "nobody:latest"},
                files=[("channels", (image.name, stream))],
            )

    detail = assert_refused(settings, send, 404, "no model 'nobody:latest'")
    assert detail[0]["loc"] == ["body", "model"]
    assert_refused(
        settings, lambda: client.get("/v1/models/nobody:3", headers=keys[Role.viewer]), 404, "no model"
    )


def test_an_unknown_job(client, keys, settings):
    for path in ("/v1/jobs/feedface", "/v1/jobs/feedface/log", "/v1/jobs/feedface/events"):
        assert_refused(settings, lambda path=path: client.get(path, headers=keys[Role.viewer]), 404, "no job")


def test_an_invalid_edited_plans_document(client, keys, settings, tmp_path, plans_document):
    dataset = uploaded_dataset(client, keys[Role.trainer], tmp_path)
    plan = add_plan(settings, dataset["id"], plans_document)
    edited = json.loads(json.dumps(plans_document))
    edited["configurations"]["2d"]["batch_size"] = "big"
    del edited["configurations"]["2d"]["patch_size"]
    edited["configurations"]["2d"]["spacing"] = [9.0, 9.0]
    send = lambda document: client.put(  # noqa: E731
        f"/v1/plans/{plan.id}/document", headers=keys[Role.trainer], json=document
    )
    detail = assert_refused(settings, lambda: send(edited), 422, "batch_size", "patch_size")
    assert {item["kind"] for item in detail} == {"invalid_plans"}
    del edited["configurations"]["2d"]["batch_size"]
    edited["configurations"]["2d"].update(
        batch_size=2, patch_size=plans_document["configurations"]["2d"]["patch_size"]
    )
    assert_refused(settings, lambda: send(edited), 422, "2d.spacing was changed")


def test_a_missing_key(client, settings):
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer not-a-key"}):
        assert_refused(
            settings, lambda headers=headers: client.get("/v1/datasets", headers=headers), 401, "key"
        )


def test_a_revoked_key(client, keys, settings):
    token = keys[Role.admin]["Authorization"].removeprefix("Bearer ")
    with session_scope(str(settings.database_url)) as session:
        revoke_key(session, authenticate(session, token).id)
    response = assert_refused(
        settings, lambda: client.get("/v1/datasets", headers=keys[Role.admin]), 401, "unknown or revoked"
    )
    assert response[0]["loc"] == ["header", "Authorization"]


def test_a_role_without_the_right(client, keys, settings):
    body = {"name": "Dataset009_X", "channel_names": {"0": "CT"}, "labels": {"background": 0, "a": 1}}
    for role in (Role.viewer, Role.predictor, Role.evaluator):
        assert_refused(
            settings,
            lambda role=role: client.post("/v1/datasets", headers=keys[role], json=body),
            403,
            f"a {role} key",
        )


def test_json_sent_to_a_file_route(client, keys, settings):
    assert_refused(
        settings,
        lambda: client.post("/v1/datasets/upload", headers=keys[Role.trainer], json={"archive": "x"}),
        415,
        "multipart/form-data",
    )


def test_a_training_request_with_several_mistakes(client, keys, settings):
    body = {"plan_id": "x", "epochs": 0, "folds": [0, 7], "model_name": "bad name"}
    assert_refused(
        settings,
        lambda: client.post("/v1/trainings", headers=keys[Role.trainer], json=body),
        422,
        "greater than or equal to 1, got 0",
        "less than or equal to 4, got 7",
        "should match pattern",
    )


def test_a_case_with_the_wrong_file_ending_and_no_label(client, keys, settings, tmp_path, raw):
    dataset = uploaded_dataset(client, keys[Role.trainer], tmp_path)
    nrrd = tmp_path / "scan.nrrd"
    sitk.WriteImage(sitk.ReadImage(str(raw / "imagesTr" / "case_000_0000.nii.gz")), str(nrrd))

    def send() -> httpx.Response:
        with nrrd.open("rb") as stream:
            return client.put(
                f"/v1/datasets/{dataset['id']}/cases/case_100",
                headers=keys[Role.trainer],
                files=[("channels", (nrrd.name, stream))],
            )

    assert_refused(settings, send, 422, "stores .nii.gz files, not .nrrd", "needs a label file")


def test_thresholds_naming_unknown_labels(client, keys, settings, tmp_path):
    dataset = uploaded_dataset(client, keys[Role.trainer], tmp_path)
    add_model(settings)
    body = {"model": "tiny", "dataset_id": dataset["id"], "thresholds": {"spleen": 0.5, "organ": 2}}
    assert_refused(
        settings,
        lambda: client.post("/v1/evaluations", headers=keys[Role.evaluator], json=body),
        422,
        "less than or equal to 1, got 2",
    )
    body["thresholds"] = {"spleen": 0.5, "organ": 0.8}
    body["use_training_cases"] = True
    assert_refused(
        settings,
        lambda: client.post("/v1/evaluations", headers=keys[Role.evaluator], json=body),
        422,
        "no label 'spleen'",
    )


def test_unreadable_multipart_and_extra_fields(client, keys, settings):
    headers = {**keys[Role.trainer], "Content-Type": "multipart/form-data; boundary=xyz"}
    assert_refused(
        settings,
        lambda: client.post("/v1/datasets/upload", headers=headers, content=b"--xyz\r\nbroken"),
        422,
        "the file field 'archive' is missing",
    )
