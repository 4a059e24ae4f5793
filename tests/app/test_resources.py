"""Plans, trainings, models, predictions and evaluations over HTTP: each long operation answers 202 with
a job whose task is on the broker (the embedded one here) only after its rows were committed."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import SimpleITK as sitk

from service import paths
from service.db.models import Job, JobStatus, Role
from service.db.session import session_scope
from tests.app.support import add_model, add_plan, tar_folder, uploaded_dataset, zip_folder


def broker_messages(settings) -> list[str]:
    """Task payloads waiting on the embedded broker (kombu's SQLAlchemy transport tables)."""
    with sqlite3.connect(settings.data_root / "broker.sqlite3") as connection:
        return [row[0] for row in connection.execute("SELECT payload FROM kombu_message")]


def finish(settings, job_id: str, **artifacts: str) -> None:
    with session_scope(str(settings.database_url)) as session:
        job = session.get(Job, job_id)
        job.status, job.result = JobStatus.succeeded, {"artifacts": artifacts}


def test_plan_then_edit_then_train(client, keys, settings, tmp_path, plans_document):
    headers = keys[Role.trainer]
    dataset = uploaded_dataset(client, headers, tmp_path)
    accepted = client.post(
        "/v1/plans", headers=headers, json={"dataset_id": dataset["id"], "configurations": ["2d"]}
    )
    assert accepted.status_code == 202, accepted.text
    plan, job = accepted.json()["plan"], accepted.json()["job"]
    assert (
        job["kind"] == "plan"
        and job["params"]["plan_id"] == plan["id"]
        and job["params"]["gpu_memory_gb"] == 8.0
    )
    assert any(job["id"] in payload for payload in broker_messages(settings))
    with session_scope(str(settings.database_url)) as session:
        assert session.get(Job, job["id"]).task_id
    early = client.post("/v1/trainings", headers=headers, json={"plan_id": plan["id"], "model_name": "tiny"})
    assert early.status_code == 409 and "not made yet" in early.json()["message"]

    ready = add_plan(settings, dataset["id"], plans_document)
    edited = json.loads(json.dumps(plans_document))
    edited["configurations"]["2d"]["batch_size"] = 3
    response = client.put(f"/v1/plans/{ready.id}/document", headers=headers, json=edited)
    assert response.status_code == 200 and response.json()["is_edited"]
    on_disk = json.loads((paths.absolute(settings, ready.path) / "plans.json").read_text())
    assert on_disk["configurations"]["2d"]["batch_size"] == 3

    body = {"plan_id": ready.id, "configurations": ["3d_fullres"], "model_name": "tiny"}
    unknown = client.post("/v1/trainings", headers=headers, json=body)
    assert unknown.status_code == 422 and "no configuration(s) ['3d_fullres']" in unknown.json()["message"]
    body.update(configurations="auto", folds=[1, 0], epochs=2, iterations_per_epoch=2)
    training = client.post("/v1/trainings", headers=headers, json=body)
    assert training.status_code == 202
    assert training.json()["params"] == {
        "dataset_id": dataset["id"],
        "plan_id": ready.id,
        "configurations": "auto",
        "folds": [0, 1],
        "epochs": 2,
        "iterations_per_epoch": 2,
        "validation_iterations": 50,
        "seed": 0,
        "model_name": "tiny",
    }


def test_models_resolve_by_id_name_and_version(client, keys, settings):
    first, second = add_model(settings, "liver"), add_model(settings, "liver")
    headers = keys[Role.predictor]
    for reference, expected in (
        ("liver", second),
        ("liver:latest", second),
        ("liver:1", first),
        (first.id, first),
    ):
        assert client.get(f"/v1/models/{reference}", headers=headers).json()["id"] == expected.id
    listed = client.get("/v1/models", params={"name": "liver"}, headers=headers).json()
    assert [model["version"] for model in listed["data"]] == [2, 1]


def test_prediction_idempotency_download_and_deletion(client, keys, settings, tmp_path):
    model = add_model(settings)
    image = tmp_path / "scan.mha"
    source = sitk.GetImageFromArray(np.random.default_rng(0).normal(size=(20, 24)).astype(np.float32))
    source.SetSpacing((0.7, 0.8))
    sitk.WriteImage(source, str(image))
    headers = {**keys[Role.predictor], "Idempotency-Key": "study-42"}

    def post(sender=headers, content=None, save_probabilities="true"):
        files = [("channels", (image.name, content or image.read_bytes()))]
        return client.post(
            "/v1/predictions",
            headers=sender,
            data={"model": "tiny", "save_probabilities": save_probabilities},
            files=files,
        )

    accepted = post()
    assert accepted.status_code == 202, accepted.text
    prediction = accepted.json()["prediction"]
    assert prediction["options"]["file_ending"] == ".mha" and prediction["options"]["save_probabilities"]
    folder = paths.prediction_dir(settings, prediction["id"])
    assert (folder / "input" / "case_0000.mha").is_file()
    replay = post()
    assert replay.status_code == 200 and replay.json()["prediction"]["id"] == prediction["id"]
    assert len(list(paths.prediction_dir(settings, "x").parent.iterdir())) == 1
    # The same key for another study, or other options, is refused rather than answered with the first.
    other_study = tmp_path / "other.mha"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((20, 24), np.float32)), str(other_study))
    for reused in (post(content=other_study.read_bytes()), post(save_probabilities="false")):
        assert reused.status_code == 422, reused.text
        (problem,) = reused.json()["detail"]
        assert problem["loc"] == ["header", "Idempotency-Key"] and prediction["id"] in problem["problem"]
    assert len(list(paths.prediction_dir(settings, "x").parent.iterdir())) == 1
    # The same Idempotency-Key from another API key is another client's request.
    other = post({**keys[Role.admin], "Idempotency-Key": "study-42"})
    assert other.status_code == 202 and other.json()["prediction"]["id"] != prediction["id"]
    cancel = client.post(f"/v1/jobs/{other.json()['job']['id']}/cancel", headers=keys[Role.admin])
    assert cancel.json()["status"] == "cancelled"

    url = f"/v1/predictions/{prediction['id']}"
    assert client.get(f"{url}/segmentation", headers=headers).status_code == 409
    output = folder / "output" / "case.mha"
    output.parent.mkdir()
    sitk.WriteImage(sitk.Cast(source > 0, sitk.sitkUInt8), str(output))
    finish(settings, prediction["job_id"], segmentation=paths.relative(settings, output))
    status = client.get(url, headers=headers).json()
    assert status["status"] == "succeeded" and status["probabilities_url"] is None
    download = client.get(status["segmentation_url"], headers=headers)
    assert download.status_code == 200 and download.content == output.read_bytes()
    assert client.get(f"{url}/probabilities", headers=headers).status_code == 404

    assert client.delete(f"/v1/models/{model.id}", headers=keys[Role.admin]).status_code == 204
    assert not folder.exists() and client.get(url, headers=keys[Role.admin]).status_code == 404


def test_evaluations_of_a_model_and_of_archives(client, keys, settings, tmp_path):
    dataset = uploaded_dataset(client, keys[Role.trainer], tmp_path)
    add_model(settings)
    headers = keys[Role.evaluator]
    body = {"model": "tiny", "dataset_id": dataset["id"], "thresholds": {"organ": 0.8, "2": 0.5}}
    no_test_cases = client.post("/v1/evaluations", headers=headers, json=body)
    assert no_test_cases.status_code == 422 and "no labelled test cases" in no_test_cases.json()["message"]
    accepted = client.post("/v1/evaluations", headers=headers, json={**body, "use_training_cases": True})
    assert accepted.status_code == 202
    assert accepted.json()["job"]["params"]["use_training_cases"] is True
    assert accepted.json()["evaluation"]["thresholds"] == {"organ": 0.8, "2": 0.5}

    labels = tmp_path / "raw" / "labelsTr"
    archive = zip_folder(labels, tmp_path / "labels.zip")
    files = [
        ("predictions", ("p.zip", archive.read_bytes())),
        ("references", ("r.zip", archive.read_bytes())),
    ]
    data = {
        "thresholds": json.dumps({"foreground_mean": 0.9}),
        "labels": json.dumps({"background": 0, "organ": 1, "lesion": 2}),
    }
    response = client.post("/v1/evaluations/archives", headers=headers, files=files, data=data)
    assert response.status_code == 202, response.text
    folder = paths.evaluation_dir(settings, response.json()["evaluation"]["id"])
    assert sorted(p.name for p in (folder / "references").iterdir()) == sorted(
        p.name for p in labels.iterdir()
    )
    assert json.loads((folder / "predictions" / "dataset.json").read_text())["labels"]["organ"] == 1

    (tmp_path / "fewer").mkdir()
    (tmp_path / "fewer" / "case_000.nii.gz").write_bytes((labels / "case_000.nii.gz").read_bytes())
    files[1] = ("references", ("r.zip", zip_folder(tmp_path / "fewer", tmp_path / "fewer.zip").read_bytes()))
    unpaired = client.post("/v1/evaluations/archives", headers=headers, files=files, data=data)
    assert unpaired.status_code == 422
    assert len(unpaired.json()["detail"]) == 3  # every prediction without its reference


def test_a_model_import_is_checked_parked_and_queued(client, keys, settings, tmp_path):
    (tmp_path / "results" / "fold_0").mkdir(parents=True)
    (tmp_path / "results" / "plans.json").write_text("{}")
    headers = keys[Role.trainer]
    archive = zip_folder(tmp_path / "results", tmp_path / "model.zip")
    files = {"archive": ("model.zip", archive.read_bytes())}
    accepted = client.post("/v1/models/import", headers=headers, files=files, data={"model_name": "imported"})
    assert accepted.status_code == 202, accepted.text
    params = accepted.json()["params"]
    assert params["model_name"] == "imported" and accepted.json()["kind"] == "import_model"
    assert paths.absolute(settings, params["archive_path"]).read_bytes() == archive.read_bytes()
    assert any(accepted.json()["id"] in payload for payload in broker_messages(settings))
    tarred = tar_folder(tmp_path / "results", tmp_path / "model.tar.gz")
    files = {"archive": ("model.tar.gz", tarred.read_bytes())}
    refused = client.post("/v1/models/import", headers=headers, files=files, data={"model_name": "imported"})
    assert refused.status_code == 422 and ".zip" in refused.json()["message"]
