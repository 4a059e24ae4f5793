"""Every job kind through a real `nnsvc worker` process with PostgreSQL + Redis: plan, train (parent →
fold → select → model), predict, evaluate. Jobs are created as rows and sent as the API sends them.
The embedded default (SQLite + the SQLite broker) runs the same path in the HTTP end-to-end test
(tests/app/test_end_to_end.py) and in the examples' tests, so it is not repeated here."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import SimpleITK as sitk

from core.interop import export_nnunet_model
from service.db.models import Dataset, Evaluation, Job, JobKind, JobStatus, Model, Plan, Prediction, new_id
from service.db.session import session_scope
from service.paths import evaluation_dir, prediction_dir, raw_dir, relative
from service.settings import Settings
from tests.worker.conftest import server_settings
from tests.worker.support import (
    HELD_OUT,
    TINY_TRAINING,
    Workers,
    add_plan,
    assert_succeeded,
    job_log,
    make_dataset,
    submit,
)


@pytest.fixture
def settings(postgres_url: str, redis_url: str, tmp_path: Path) -> Settings:
    return server_settings(tmp_path, postgres_url, redis_url)


def geometry(path: Path) -> tuple:
    image = sitk.ReadImage(str(path))
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def test_plan_train_predict_evaluate(settings: Settings, make_workers: Callable[..., Workers]) -> None:
    make_workers(settings).start()
    dataset_id = make_dataset(settings)
    plan_id = add_plan(settings, dataset_id, is_planned=False)

    job_id = submit(
        settings, JobKind.plan, {"dataset_id": dataset_id, "plan_id": plan_id, "gpu_memory_gb": 8.0}
    )
    assert_succeeded(settings, job_id, timeout_s=120)
    with session_scope(str(settings.database_url)) as session:
        assert list(session.get(Plan, plan_id).document["configurations"]) == ["2d"]
        assert session.get(Dataset, dataset_id).fingerprint["spacings"]

    training = {"dataset_id": dataset_id, "plan_id": plan_id, "configurations": "auto", "folds": [0]}
    job_id = submit(settings, JobKind.train, {**training, **TINY_TRAINING, "model_name": "tiny"})
    parent = assert_succeeded(settings, job_id, timeout_s=300)
    with session_scope(str(settings.database_url)) as session:
        children = session.get(Job, job_id).children
        assert [(c.kind, c.status) for c in children] == [
            (JobKind.train_fold, JobStatus.succeeded),
            (JobKind.select, JobStatus.succeeded),
        ]
        assert children[0].result["epochs_run"] == TINY_TRAINING["epochs"]
        model = session.get(Model, parent.result["model_id"])
        assert (model.name, model.version, model.configurations, model.folds) == ("tiny", 1, ["2d"], [0])
        assert model.selection["best_model_or_ensemble"]["selected_model_or_models"] == [
            {"configuration": "2d"}
        ]
        model_id = model.id

    # The model exported as an nnU-Net v2 zip and imported back: a second model, version 1 of its name.
    archive = settings.data_root / "staging" / "export.zip"
    export_nnunet_model(settings.data_root / model.path, archive, as_zip=True)
    params = {"archive_path": relative(settings, archive), "model_name": "imported"}
    imported = assert_succeeded(settings, submit(settings, JobKind.import_model, params), timeout_s=120)
    assert imported.result["model_id"] == imported.id  # a retried import finds its own folder
    assert (imported.result["version"], imported.result["configurations"]) == (1, ["2d"])

    # A case posted as NRRD to a model trained on NIfTI comes back as NRRD, on the input's grid.
    prediction_id, case = new_id(), HELD_OUT[0]
    folder = prediction_dir(settings, prediction_id)
    (folder / "input").mkdir(parents=True)
    posted = folder / "input" / f"{case}_0000.nrrd"
    sitk.WriteImage(
        sitk.ReadImage(str(raw_dir(settings, dataset_id) / "imagesTs" / f"{case}_0000.nii.gz")), posted
    )

    def prediction(job: str) -> Prediction:
        path, options = relative(settings, folder), {"file_ending": ".nrrd"}
        return Prediction(id=prediction_id, model_id=model_id, job_id=job, path=path, options=options)

    predict_job = submit(settings, JobKind.predict, {"prediction_id": prediction_id}, prediction)
    result = assert_succeeded(settings, predict_job, timeout_s=120).result
    segmentation = settings.data_root / result["artifacts"]["segmentation"]
    assert segmentation == folder / "output" / f"{case}.nrrd"
    assert geometry(segmentation) == geometry(posted)

    evaluation_id = new_id()
    thresholds = {"organ": 0.0, "foreground_mean": 0.0}

    def by_model(job: str) -> Evaluation:
        path = relative(settings, evaluation_dir(settings, evaluation_id))
        return Evaluation(
            id=evaluation_id,
            job_id=job,
            model_id=model_id,
            dataset_id=dataset_id,
            path=path,
            thresholds=thresholds,
        )

    job_id = submit(settings, JobKind.evaluate, {"evaluation_id": evaluation_id}, by_model)
    result = assert_succeeded(settings, job_id, timeout_s=120).result
    assert (result["passed"], result["failures"]) == (True, [])
    # The worker kept the predictor the prediction loaded: the evaluation predicted without loading.
    assert "loaded 2d folds" in job_log(settings, predict_job)
    assert "loaded 2d folds" not in job_log(settings, job_id)
    with session_scope(str(settings.database_url)) as session:
        stored = session.get(Evaluation, evaluation_id)
        assert stored.passed is True
        assert len(stored.summary["metric_per_case"]) == len(HELD_OUT)

    # The same predictions posted as folders, with a threshold no model reaches: a failed gate.
    folders_id = new_id()
    target = evaluation_dir(settings, folders_id)
    shutil.copytree(evaluation_dir(settings, evaluation_id) / "predictions", target / "predictions")
    shutil.copytree(raw_dir(settings, dataset_id) / "labelsTs", target / "references")

    def by_folders(job: str) -> Evaluation:
        path = relative(settings, target)
        return Evaluation(id=folders_id, job_id=job, path=path, thresholds={"foreground_mean": 1.01})

    job_id = submit(settings, JobKind.evaluate, {"evaluation_id": folders_id}, by_folders)
    result = assert_succeeded(settings, job_id, timeout_s=120).result
    assert result["passed"] is False
    assert [failure.split(":")[0] for failure in result["failures"]] == ["foreground_mean"]
