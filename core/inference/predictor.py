"""The predictor: a trained model folder loaded once, then case after case (METHOD.md 7).

`Predictor.from_model_dir` reads `MODEL_DIR/<configuration>/` (plans.json, dataset.json and the
`fold_K/<checkpoint>` files, weights-only) and builds one network; with several folds it loads each
fold's weights in turn and averages the folds' logits, as nnU-Net v2 does, so memory holds one network
and the folds' state dicts. A case runs the training preprocessing (`preprocess_case_arrays`), the
sliding window, the export and the optional postprocessing callable, and is written with exactly the
input's geometry.

A cascade (3d_cascade_fullres) loaded from a model folder holds a predictor of its previous stage
(3d_lowres, same folds): a case is first segmented by that one, and the segmentation, on the input's
grid, goes through the same preprocessing and becomes one-hot input channels (METHOD.md 7.2).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from core.dataset import DatasetSpec, group_channel_files, load_dataset_json
from core.errors import ProblemsError
from core.geometry import Geometry
from core.inference.export import OutputLayout, export_logits, write_probabilities
from core.inference.network_runtime import NetworkRunner
from core.inference.sliding_window import SlidingWindowSettings, sliding_window_logits
from core.io import file_ending_of, read_image, read_segmentation, write_segmentation
from core.network import build_network
from core.parallel import ProgressCallback, no_progress
from core.plans import Plans, load_plans
from core.precision_choices import PRECISION_CHOICES
from core.preprocessed import CaseProperties
from core.preprocessing import preprocess_case_arrays
from core.process_memory import keep_freed_memory
from core.training.checkpoints import FINAL, load_checkpoint

logger = logging.getLogger(__name__)

Postprocess = Callable[[np.ndarray], np.ndarray]
DEFAULT_WINDOWS_PER_BATCH = 1


class PredictorError(ProblemsError):
    """A model folder or an input that the predictor cannot use; names the folder, file or case."""


@dataclass(frozen=True)
class Prediction:
    """One case's result on the input's grid: `segmentation` (z, y, x) and, when asked for,
    `probabilities` (K, z, y, x), both in the reader's axis order."""

    segmentation: np.ndarray
    geometry: Geometry
    properties: CaseProperties
    probabilities: np.ndarray | None = None


def choose_inference_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise PredictorError(f"device '{choice}' was asked for, but torch sees no CUDA GPU")
    return torch.device(choice)


def _find_folds(configuration_dir: Path, checkpoint: str) -> list[str]:
    folds = [
        p.name.removeprefix("fold_")
        for p in sorted(configuration_dir.glob("fold_*"))
        if (p / checkpoint).is_file() and p.name != "fold_all"
    ]
    return folds


def one_hot_foreground(seg: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """(len(labels), *seg.shape) float32 indicators: the cascade's extra input channels."""
    return np.stack([(seg == label) for label in labels]).astype(np.float32)


class Predictor:
    """A model loaded for prediction; see the module docstring."""

    def __init__(
        self,
        plans: Plans,
        spec: DatasetSpec,
        configuration_name: str,
        fold_weights: Sequence[dict[str, torch.Tensor]],
        mirror_axes: Sequence[int],
        device: str | torch.device = "auto",
        step_size: float = 0.5,
        windows_per_batch: int = DEFAULT_WINDOWS_PER_BATCH,
        postprocess: Postprocess | None = None,
        accumulator_dtype: torch.dtype = torch.float32,
        previous_stage_predictor: Predictor | None = None,
        precision: str = "auto",
    ) -> None:
        if not fold_weights:
            raise PredictorError("no fold weights given")
        if precision not in PRECISION_CHOICES:
            raise PredictorError(f"precision must be one of {', '.join(PRECISION_CHOICES)}; got {precision}")
        self.plans, self.spec, self.configuration_name = plans, spec, configuration_name
        self.configuration = plans.configuration(configuration_name)
        self.layout = OutputLayout.from_spec(spec)
        self.device = device if isinstance(device, torch.device) else choose_inference_device(device)
        self.fold_weights = list(fold_weights)
        self.postprocess = postprocess
        self.is_cascade = self.configuration.previous_stage is not None
        self.previous_stage_predictor = previous_stage_predictor
        extra = len(spec.foreground_labels) if self.is_cascade else 0
        self.network = build_network(
            self.configuration, spec.num_channels + extra, self.layout.num_outputs, deep_supervision=False
        )
        self.network.load_state_dict(self.fold_weights[0])
        keep_freed_memory()  # network passes reuse freed activations instead of faulting in fresh pages
        self.runner = NetworkRunner(self.network, self.device, precision)
        self.settings = SlidingWindowSettings(
            patch_size=tuple(self.configuration.patch_size),
            step_size=step_size,
            mirror_axes=tuple(int(a) for a in mirror_axes),
            windows_per_batch=windows_per_batch,
            accumulator_dtype=accumulator_dtype,
        )

    @classmethod
    def from_model_dir(
        cls,
        model_dir: Path,
        configuration: str,
        folds: Sequence[int | str] | None = None,
        device: str = "auto",
        checkpoint: str = FINAL,
        use_mirroring: bool = True,
        step_size: float = 0.5,
        postprocess: Postprocess | None = None,
        windows_per_batch: int = DEFAULT_WINDOWS_PER_BATCH,
        accumulator_dtype: torch.dtype = torch.float32,
        with_previous_stage: bool = True,
        precision: str = "auto",
    ) -> Predictor:
        """Load `model_dir/<configuration>/`; `folds=None` takes every `fold_K` holding `checkpoint`.

        A cascade also loads its previous stage from `model_dir` with the same folds, unless
        `with_previous_stage` is False (then every case needs its previous-stage segmentation passed in).
        """
        folder = Path(model_dir) / configuration
        if not (folder / "plans.json").is_file():
            raise PredictorError(f"{folder}: not a trained configuration folder (no plans.json)")
        plans = load_plans(folder / "plans.json")
        spec = load_dataset_json(folder / "dataset.json")
        names = [str(f) for f in folds] if folds is not None else _find_folds(folder, checkpoint)
        if not names:
            raise PredictorError(f"{folder}: no fold_K/{checkpoint} found")
        missing = [
            f"{folder}/fold_{name}/{checkpoint}: not found"
            for name in names
            if not (folder / f"fold_{name}" / checkpoint).is_file()
        ]
        if missing:
            raise PredictorError(missing)
        documents = [load_checkpoint(folder / f"fold_{name}" / checkpoint) for name in names]
        axes = documents[0].get("inference_allowed_mirroring_axes") or ()
        logger.info("loaded %s folds %s from %s", configuration, names, folder)
        previous = plans.configuration(configuration).previous_stage
        previous_stage_predictor = None
        if previous is not None and with_previous_stage:
            try:
                previous_stage_predictor = cls.from_model_dir(
                    model_dir,
                    previous,
                    folds=names,
                    device=device,
                    checkpoint=checkpoint,
                    use_mirroring=use_mirroring,
                    step_size=step_size,
                    windows_per_batch=windows_per_batch,
                    accumulator_dtype=accumulator_dtype,
                    precision=precision,
                )
            except PredictorError as error:
                context = f"{configuration} predicts on top of {previous} (same folds)"
                raise PredictorError([f"{context}: {problem}" for problem in error.problems]) from None
        return cls(
            plans,
            spec,
            configuration,
            [d["network_weights"] for d in documents],
            axes if use_mirroring else (),
            device,
            step_size,
            windows_per_batch,
            postprocess,
            accumulator_dtype,
            previous_stage_predictor=previous_stage_predictor,
            precision=precision,
        )

    @torch.inference_mode()
    def predict_logits(self, data: np.ndarray) -> torch.Tensor:
        """Fold-averaged logits (K, *spatial) on the host, for preprocessed (C, *spatial); the sum over
        folds is divided by their number (logit space, as nnU-Net v2)."""
        tensor = torch.from_numpy(np.ascontiguousarray(data))
        total: torch.Tensor | None = None
        for index, weights in enumerate(self.fold_weights):
            if index > 0:
                self.network.load_state_dict(weights)
            logits = sliding_window_logits(
                self.runner, tensor, self.layout.num_outputs, self.settings, self.device
            )
            total = logits if total is None else total.add_(logits)
        if len(self.fold_weights) > 1:
            self.network.load_state_dict(self.fold_weights[0])
            total /= len(self.fold_weights)
        return total

    def preprocess(
        self, data: np.ndarray, geometry: Geometry, previous_stage: np.ndarray | None = None
    ) -> tuple[np.ndarray, CaseProperties]:
        """The network input (channels, *spatial) and properties; a cascade appends the previous
        stage's segmentation (z, y, x, reader order) as one-hot foreground channels."""
        if self.is_cascade != (previous_stage is not None):
            name = self.configuration_name
            need = "needs a" if self.is_cascade else "has no previous stage; pass no"
            raise PredictorError(f"configuration {name} {need} previous-stage segmentation")
        if previous_stage is not None and previous_stage.shape != data.shape[1:]:
            raise PredictorError(
                f"the previous-stage segmentation has shape {previous_stage.shape}, "
                f"the image {data.shape[1:]}: it must be the same case's"
            )
        seg = None if previous_stage is None else previous_stage[None]
        name = self.configuration_name
        work, seg_out, properties = preprocess_case_arrays(data, seg, geometry, self.plans, name)
        if seg_out is not None:
            work = np.concatenate([work, one_hot_foreground(seg_out[0], self.spec.foreground_labels)])
        return work, properties

    def predict_arrays(
        self,
        data: np.ndarray,
        geometry: Geometry,
        previous_stage: np.ndarray | None = None,
        return_probabilities: bool = False,
    ) -> Prediction:
        """`data` (channels, z, y, x) as `core.io.read_image` gives it. A cascade without
        `previous_stage` (z, y, x) segments the case with its previous-stage predictor first."""
        if data.shape[0] != self.spec.num_channels:
            raise PredictorError(f"expected {self.spec.num_channels} channels, got {data.shape[0]}")
        if self.is_cascade and previous_stage is None and self.previous_stage_predictor is not None:
            previous_stage = self.previous_stage_predictor.predict_arrays(data, geometry).segmentation
        # Resampling is BLAS matrix products (core.resampling): give them torch's thread budget, also
        # where OMP_NUM_THREADS=1 keeps BLAS on one thread for the sake of worker processes.
        with threadpool_limits(limits=torch.get_num_threads(), user_api="blas"):
            work, properties = self.preprocess(data, geometry, previous_stage)
            logits = self.predict_logits(work)
            del work
            segmentation, probabilities = export_logits(
                logits, properties, self.plans, self.configuration_name, self.layout, return_probabilities
            )
        if self.postprocess is not None:
            segmentation = self.postprocess(segmentation)
        return Prediction(segmentation, geometry, properties, probabilities)

    def predict_case(
        self,
        image_paths: Sequence[Path],
        previous_stage: Path | None = None,
        return_probabilities: bool = False,
    ) -> Prediction:
        """One case from its channel files (CASE_0000, CASE_0001, ... in channel order)."""
        data, geometry = read_image([Path(p) for p in image_paths])
        previous = None if previous_stage is None else read_segmentation(Path(previous_stage))[0]
        return self.predict_arrays(data, geometry, previous, return_probabilities)

    def predict_to_file(
        self,
        image_paths: Sequence[Path],
        out_path: Path,
        save_probabilities: bool = False,
        previous_stage: Path | None = None,
    ) -> Path:
        """Write the segmentation to `out_path` and, on request, `<stem>.npz` + `<stem>.json` beside it."""
        out_path = Path(out_path)
        prediction = self.predict_case(image_paths, previous_stage, save_probabilities)
        if prediction.probabilities is not None:
            stem = out_path.with_name(out_path.name.removesuffix(file_ending_of(out_path)))
            write_probabilities(prediction.probabilities, prediction.properties, stem)
        write_segmentation(prediction.segmentation, prediction.geometry, out_path)
        return out_path

    def _previous_stage_problems(self, folder: Path, cases: list[str], ending: str) -> list[str]:
        """What keeps `folder` from giving each case its previous-stage segmentation (CASE<ending>)."""
        if not self.is_cascade:
            return [
                f"previous-stage segmentations were given ({folder}), but configuration "
                f"{self.configuration_name} has no previous stage"
            ]
        if not folder.is_dir():
            return [f"{folder}: the previous-stage folder does not exist"]
        return [
            f"{case}: no previous-stage segmentation {folder / (case + ending)}"
            for case in cases
            if not (folder / f"{case}{ending}").is_file()
        ]

    def predict_folder(
        self,
        in_dir: Path,
        out_dir: Path,
        save_probabilities: bool = False,
        previous_stage_dir: Path | None = None,
        progress: ProgressCallback = no_progress,
        file_ending: str | None = None,
    ) -> list[Path]:
        """Predict every `CASE_XXXX<ending>` group of `in_dir` into `out_dir/CASE<ending>`; the ending
        is dataset.json's unless `file_ending` names the inputs' (e.g. .nrrd cases for a .nii.gz model).
        A cascade takes each case's previous stage from `previous_stage_dir/CASE<ending>` when given
        (segmentations made elsewhere), else predicts it with its previous-stage predictor."""
        ending = file_ending or self.spec.file_ending
        grouped, _ = group_channel_files(Path(in_dir), ending)
        problems = [
            f"{case}: has channels {sorted(channels)}, expected 0..{self.spec.num_channels - 1}"
            for case, channels in grouped.items()
            if sorted(channels) != list(range(self.spec.num_channels))
        ]
        if not grouped:
            problems.append(f"{in_dir}: no CASE_XXXX{ending} files")
        if previous_stage_dir is not None:
            problems += self._previous_stage_problems(Path(previous_stage_dir), sorted(grouped), ending)
        if problems:
            raise PredictorError(problems)
        written = []
        for index, case in enumerate(sorted(grouped)):
            start = time.perf_counter()
            channels = grouped[case]
            previous = None if previous_stage_dir is None else Path(previous_stage_dir) / f"{case}{ending}"
            out = self.predict_to_file(
                [channels[c] for c in sorted(channels)],
                Path(out_dir) / f"{case}{ending}",
                save_probabilities,
                previous,
            )
            written.append(out)
            seconds = time.perf_counter() - start
            progress((index + 1) / len(grouped), "predict", case, seconds=seconds)
        return written
