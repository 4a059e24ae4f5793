"""Datasets over HTTP: archives in, empty datasets filled case by case, deletion of files with rows."""

from __future__ import annotations

import json

import SimpleITK as sitk

from service import paths
from service.db.models import JobKind, Role
from service.db.session import session_scope
from service.jobs import create_job
from tests.app.support import data_root_files, tar_folder, tiny_dataset, upload_archive, zip_folder


def test_a_zip_and_a_tar_gz_upload_land_whole_under_the_data_root(client, keys, settings, tmp_path):
    raw = tiny_dataset(tmp_path / "Dataset001_Tiny")
    (raw / "imagesTs").mkdir()
    (raw / "imagesTr" / "case_003_0000.nii.gz").rename(raw / "imagesTs" / "case_003_0000.nii.gz")
    (raw / "labelsTr" / "case_003.nii.gz").unlink()
    document = json.loads((raw / "dataset.json").read_text())
    (raw / "dataset.json").write_text(json.dumps({**document, "numTraining": 3}))
    headers = keys[Role.trainer]
    for archive in (zip_folder(raw, tmp_path / "flat.zip"), tar_folder(raw, tmp_path / "nested.tar.gz")):
        response = upload_archive(client, headers, archive, description="two kinds of archive")
        assert response.status_code == 201, response.text
        dataset = response.json()
        assert (dataset["num_training"], dataset["num_test"], dataset["name"]) == (
            3,
            1,
            "Dataset003_Synthetic2D",
        )
        assert dataset["cases"][-1] == {**dataset["cases"][-1], "name": "case_003", "is_test": True}
        stored = paths.raw_dir(settings, dataset["id"])
        assert sorted(p.name for p in (stored / "imagesTr").iterdir()) == sorted(
            p.name for p in (raw / "imagesTr").iterdir()
        )
    listed = client.get("/v1/datasets", headers=keys[Role.viewer]).json()
    assert listed["count"] == 2 and listed["data"][0]["description"] == "two kinds of archive"
    assert not any((settings.data_root / "staging").iterdir())


def test_an_empty_dataset_grows_case_by_case(client, keys, settings, tmp_path):
    raw = tiny_dataset(tmp_path / "raw")
    headers = keys[Role.trainer]
    body = {
        "name": "Dataset010_Bridge",
        "channel_names": {"0": "microscopy"},
        "labels": {"background": 0, "organ": 1, "lesion": 2},
    }
    created = client.post("/v1/datasets", headers=headers, json=body)
    assert created.status_code == 201, created.text
    dataset_id = created.json()["id"]

    def put(name: str, case: str, **data: str):
        image, label = raw / "imagesTr" / f"{case}_0000.nii.gz", raw / "labelsTr" / f"{case}.nii.gz"
        files = [("channels", (image.name, image.read_bytes())), ("label", (label.name, label.read_bytes()))]
        return client.put(f"/v1/datasets/{dataset_id}/cases/{name}", headers=headers, files=files, data=data)

    assert put("study_a", "case_000").status_code == 200
    assert put("study_b", "case_001").status_code == 200
    replaced = put("study_a", "case_002")
    assert replaced.json() == {**replaced.json(), "name": "study_a", "has_label": True, "is_test": False}
    held_out = put("study_c", "case_003", is_test="true")
    assert held_out.json()["is_test"] and held_out.json()["has_label"]
    stored = paths.raw_dir(settings, dataset_id)
    assert json.loads((stored / "dataset.json").read_text())["numTraining"] == 2
    same = sitk.ReadImage(str(stored / "imagesTr" / "study_a_0000.nii.gz"))
    assert same.GetSize() == sitk.ReadImage(str(raw / "imagesTr" / "case_002_0000.nii.gz")).GetSize()
    assert (stored / "labelsTs" / "study_c.nii.gz").is_file()
    dataset = client.get(f"/v1/datasets/{dataset_id}", headers=keys[Role.viewer]).json()
    assert [case["name"] for case in dataset["cases"]] == ["study_a", "study_b", "study_c"]
    assert (dataset["num_training"], dataset["num_test"], dataset["spec"]["numTraining"]) == (2, 1, 2)


def test_an_empty_dataset_with_a_bad_declaration(client, keys):
    body = {
        "name": "Dataset011_Bad",
        "channel_names": {"1": "CT"},
        "labels": {"tumour": 2},
        "file_ending": ".mhd",
    }
    response = client.post("/v1/datasets", headers=keys[Role.trainer], json=body)
    assert response.status_code == 422
    problems = " | ".join(item["problem"] for item in response.json()["detail"])
    for fragment in ("file_ending must be one of", "channel_names keys must be 0..0", "'background' to 0"):
        assert fragment in problems


def test_delete_removes_files_and_rows_but_not_while_a_job_uses_the_dataset(client, keys, settings, tmp_path):
    response = upload_archive(
        client, keys[Role.trainer], zip_folder(tiny_dataset(tmp_path / "r"), tmp_path / "d.zip")
    )
    dataset_id = response.json()["id"]
    with session_scope(str(settings.database_url)) as session:
        job_id = create_job(session, JobKind.plan, {"dataset_id": dataset_id, "plan_id": "p"}).id
    busy = client.delete(f"/v1/datasets/{dataset_id}", headers=keys[Role.admin])
    assert busy.status_code == 409 and job_id in busy.json()["detail"][0]["problem"]
    client.post(f"/v1/jobs/{job_id}/cancel", headers=keys[Role.admin])
    assert client.delete(f"/v1/datasets/{dataset_id}", headers=keys[Role.trainer]).status_code == 403
    assert client.delete(f"/v1/datasets/{dataset_id}", headers=keys[Role.admin]).status_code == 204
    assert client.get(f"/v1/datasets/{dataset_id}", headers=keys[Role.admin]).status_code == 404
    assert not any(name.startswith("datasets/") for name in data_root_files(settings))
