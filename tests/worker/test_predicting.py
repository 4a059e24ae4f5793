"""The worker's predictor cache and its answer to running out of GPU memory (orchestration only: the
predictor and the prediction are stand-ins here; tests/worker/test_pipeline.py predicts for real)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.inference.model_prediction import PredictionOptions
from worker import predicting
from worker.context import JobInputError


class FakePredictor:
    postprocess: object = "left over from the last job"


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every predictor actually loaded, as (model folder, configuration); a fresh cache per test."""
    loaded: list[tuple[str, str]] = []

    def load(model_dir: Path, configuration: str, options: PredictionOptions) -> FakePredictor:
        loaded.append((str(model_dir), configuration))
        return FakePredictor()

    monkeypatch.setattr(predicting, "predictor_for", load)
    monkeypatch.setattr(predicting, "PREDICTORS", predicting.PredictorCache(capacity=2))
    return loaded


def test_predictors_are_reused_and_the_least_recently_used_goes_first(loads: list) -> None:
    options = PredictionOptions()
    get = {model: predicting.PREDICTORS.loader(model) for model in ("a", "b", "c")}
    first = get["a"](Path("a"), "2d", options)
    assert get["a"](Path("a"), "2d", options) is first and first.postprocess is None
    get["a"](Path("a"), "3d_fullres", options)
    get["a"](Path("a"), "2d", options)  # 2d is now the most recently used
    get["b"](Path("b"), "2d", options)  # evicts a/3d_fullres
    get["a"](Path("a"), "2d", options)
    get["a"](Path("a"), "3d_fullres", options)
    assert loads == [("a", "2d"), ("a", "3d_fullres"), ("b", "2d"), ("a", "3d_fullres")]


def test_out_of_memory_frees_other_models_then_fails_saying_what_to_change(
    loads: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = PredictionOptions()
    predicting.PREDICTORS.loader("other")(Path("other"), "2d", options)
    failures = []

    def predict(*_args: object) -> list[Path]:
        failures.append(len(predicting.PREDICTORS.entries))
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(predicting, "predict_with_model", predict)
    with pytest.raises(JobInputError) as raised:
        predicting.predict_cached("m", Path("m"), Path("in"), Path("out"), options, lambda *a, **k: None)
    assert failures == [1, 0]  # the second try ran with the other model's predictor freed
    assert "ran out of memory" in raised.value.problems[0]
    assert "3d_lowres" in raised.value.hint and "NNSVC_WORKER_DEVICE=cpu" in raised.value.hint
