"""Train one fold of one configuration (METHOD.md 5): the loop, read top to bottom.

`train_fold` wires small parts together — the network from the plans, the loss, the patch stream,
the augmentation on the training device, SGD with the polynomial schedule, the checkpoint files — and
runs epochs of: set the learning rate; train `iterations_per_epoch` batches; validate on
`validation_iterations` patches (pseudo Dice); log, plot, checkpoint. A variant is different
`TrainingOptions` or a different part passed to `run_training`, not a subclass.

Batch k of a run is a pure function of (seed, k) for sampling and augmentation alike, so stopping
after any epoch and resuming gives the very weights an uninterrupted run gives.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.augmentation import (
    AugmentationSettings,
    append_previous_stage,
    augment_training_batch,
    configure_augmentation,
    downsample_for_deep_supervision,
    prepare_validation_batch,
)
from core.constants import TRAINING_GRADIENT_CLIP_NORM, TRAINING_SGD_NESTEROV
from core.dataset import DatasetSpec, parse_dataset_json
from core.errors import ProblemsError
from core.files import write_json_atomically
from core.network import build_network
from core.parallel import ProgressCallback, no_progress
from core.plans import ConfigurationPlan, Plans, load_plans
from core.precision import training_autocast_dtype
from core.preprocessed import GT_FOLDER, list_cases
from core.process_memory import keep_freed_memory
from core.training.cascade import check_previous_stage, previous_stage_folder
from core.training.checkpoints import (
    BEST,
    FINAL,
    LATEST,
    TRAINER_NAME,
    CheckpointError,
    TrainingState,
    load_checkpoint,
    resumable_checkpoint,
    save_checkpoint,
)
from core.training.data_loader import BatchStream, PatchSampling, PreprocessedCases
from core.training.loss import (
    DeepSupervisionLoss,
    DiceCounts,
    LossSettings,
    deep_supervision_scales,
    deep_supervision_weights,
    dice_per_class,
    hard_dice_counts,
    mean_foreground_dice,
    moving_average_dice,
)
from core.training.options import TrainingOptions
from core.training.pretrained import load_pretrained_weights
from core.training.progress_log import EpochRecord, TrainingLog, describe_epoch, plot_progress
from core.training.schedule import poly_lr
from core.training.splits import SPLITS_FILE_NAME, Fold, load_or_create_splits, split_for_fold, stored_splits
from core.training.targets import region_targets

logger = logging.getLogger(__name__)

ShouldStop = Callable[[], bool]
VALIDATION_STREAM = 1  # added to the seed so validation patches differ from training patches


class TrainingSetupError(ProblemsError):
    """The run cannot start as asked (e.g. no GPU for --device cuda)."""


class TrainingStopped(RuntimeError):
    """`should_stop` asked the run to end; the latest checkpoint is where a resume starts."""


@dataclass(frozen=True)
class FoldResult:
    fold_dir: Path
    epochs_run: int
    final_ema_dice: float
    best_ema_dice: float


@dataclass
class TrainingParts:
    """Everything a run is made of; `build_parts` makes the method's, tests and variants swap pieces."""

    network: nn.Module
    loss: DeepSupervisionLoss
    loss_settings: LossSettings
    augmentation: AugmentationSettings
    deep_supervision_scales: tuple[tuple[float, ...], ...]
    regions: tuple[tuple[int, ...], ...] | None
    ignore_label: int | None
    train_cases: PreprocessedCases
    val_cases: PreprocessedCases
    train_sampling: PatchSampling
    val_sampling: PatchSampling
    device: torch.device


def choose_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise TrainingSetupError("device 'cuda' was asked for, but torch sees no CUDA GPU; use --device cpu")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def num_network_outputs(spec: DatasetSpec) -> int:
    """Softmax over every label, or one sigmoid channel per foreground region (METHOD.md 1.2)."""
    if spec.has_regions:
        return sum(1 for name in spec.labels if name not in ("background", "ignore"))
    return len(spec.all_labels)


def region_tuples(spec: DatasetSpec) -> tuple[tuple[int, ...], ...] | None:
    if not spec.has_regions:
        return None
    return tuple(
        value if isinstance(value, tuple) else (value,)
        for name, value in spec.labels.items()
        if name not in ("background", "ignore")
    )


def build_parts(
    preprocessed_dir: Path,
    plans: Plans,
    spec: DatasetSpec,
    configuration_name: str,
    fold: Fold,
    options: TrainingOptions,
    previous_stage_dir: Path | None = None,
) -> TrainingParts:
    """The method's parts; a cascade (`previous_stage` in the plans) reads its previous stage's
    segmentations from `previous_stage_dir` and gets one extra input channel per foreground label."""
    configuration = plans.configuration(configuration_name)
    data_dir = Path(preprocessed_dir) / configuration.data_identifier
    identifiers = list_cases(data_dir)
    if not identifiers:
        raise FileNotFoundError(f"{data_dir}: no preprocessed cases; run `nnsvc plan` first")
    splits_path = Path(preprocessed_dir) / SPLITS_FILE_NAME
    # Fold "all" needs no split file, so a dataset too small for five folds can still train on it.
    splits = [] if fold == "all" else load_or_create_splits(splits_path, identifiers)
    split = split_for_fold(splits, identifiers, fold)
    is_cascade = configuration.previous_stage is not None
    if is_cascade:
        if previous_stage_dir is None:
            raise TrainingSetupError(f"{configuration_name}: a cascade needs its previous stage's folder")
        known_splits = splits or stored_splits(splits_path)
        cases = sorted({*split.train, *split.val})
        check_previous_stage(previous_stage_dir, data_dir, cases, known_splits, configuration.previous_stage)
    previous = previous_stage_dir if is_cascade else None
    cascade_labels = tuple(spec.foreground_labels) if is_cascade else ()
    train_cases = PreprocessedCases(data_dir, split.train, previous)
    val_cases = PreprocessedCases(data_dir, split.val, previous)
    input_channels = train_cases.num_channels + len(cascade_labels)
    with torch.random.fork_rng(devices=[]):  # seeded initial weights, global RNG left untouched
        torch.manual_seed(options.seed)
        network = build_network(configuration, input_channels, num_network_outputs(spec))
    if options.pretrained_weights:
        load_pretrained_weights(network, Path(options.pretrained_weights))
    loss_settings = LossSettings.from_plans(configuration, spec)
    scales = deep_supervision_scales(configuration.architecture.strides)
    label_values = sorted(spec.allowed_label_values)
    augmentation = configure_augmentation(
        configuration.patch_size, label_values, configuration.use_mask_for_norm, cascade_labels
    )
    annotated_key = None if spec.ignore_label is None else (-1, *spec.all_labels)
    return TrainingParts(
        network=network,
        loss=DeepSupervisionLoss(loss_settings, deep_supervision_weights(len(scales))),
        loss_settings=loss_settings,
        augmentation=augmentation,
        deep_supervision_scales=scales,
        regions=region_tuples(spec),
        ignore_label=spec.ignore_label,
        train_cases=train_cases,
        val_cases=val_cases,
        train_sampling=PatchSampling(
            configuration.batch_size, augmentation.initial_patch_size, annotated_key=annotated_key
        ),
        val_sampling=PatchSampling(
            configuration.batch_size, tuple(configuration.patch_size), annotated_key=annotated_key
        ),
        device=choose_device(options.device),
    )


def batch_generator(seed: int, index: int) -> torch.Generator:
    """The augmentation's generator for batch `index`: a pure function of (seed, index)."""
    state = np.random.SeedSequence([seed, index]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def make_targets(seg: torch.Tensor, parts: TrainingParts) -> list[torch.Tensor]:
    targets = downsample_for_deep_supervision(seg, parts.deep_supervision_scales)
    if parts.regions is not None:
        targets = [region_targets(t, parts.regions, parts.ignore_label) for t in targets]
    return targets


class Trainer:
    """The state of one run; `run` is the loop, `restore` continues from a checkpoint."""

    def __init__(
        self, parts: TrainingParts, options: TrainingOptions, fold_dir: Path, init_args: dict
    ) -> None:
        self.parts, self.options, self.fold_dir, self.init_args = parts, options, fold_dir, init_args
        self.network = parts.network.to(parts.device)
        self.optimizer = torch.optim.SGD(
            self.network.parameters(),
            lr=options.initial_lr,
            momentum=options.momentum,
            weight_decay=options.weight_decay,
            nesterov=TRAINING_SGD_NESTEROV,
        )
        self.is_cuda = parts.device.type == "cuda"
        keep_freed_memory()  # each step's activations reuse the last step's freed memory
        if self.is_cuda:
            # nnU-Net v2's setting: every batch has the patch's shape, so cuDNN's search per shape pays
            torch.backends.cudnn.benchmark = True
        self.autocast_dtype = training_autocast_dtype(parts.device, options.precision)
        # Only float16 needs loss scaling: bfloat16 has float32's exponent range.
        self.scaler = torch.amp.GradScaler(
            parts.device.type, enabled=self.autocast_dtype == torch.float16 and self.is_cuda
        )
        self.state = TrainingState(next_epoch=0, best_ema=None)
        self.log = TrainingLog()
        self.log_path = fold_dir / f"training_log_{datetime.now():%Y_%m_%d_%H_%M_%S}.txt"

    def restore(self, checkpoint: dict) -> None:
        self.network.load_state_dict(checkpoint["network_weights"])
        self.optimizer.load_state_dict(checkpoint["optimizer_state"])
        if checkpoint.get("grad_scaler_state"):
            self.scaler.load_state_dict(checkpoint["grad_scaler_state"])
        self.log = TrainingLog.from_checkpoint(checkpoint["logging"])
        self.state = TrainingState(checkpoint["current_epoch"], checkpoint["_best_ema"])

    def checkpoint(self) -> dict:
        return {
            "network_weights": self.network.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "grad_scaler_state": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "logging": self.log.entries,
            "_best_ema": self.state.best_ema,
            "current_epoch": self.state.next_epoch,
            "init_args": self.init_args,
            "trainer_name": TRAINER_NAME,
            "inference_allowed_mirroring_axes": list(self.parts.augmentation.mirror_axes),
            "options": self.options.to_json(),
        }

    def autocast(self) -> torch.autocast:
        dtype = self.autocast_dtype or torch.float32
        return torch.autocast(self.parts.device.type, dtype=dtype, enabled=self.autocast_dtype is not None)

    def train_step(self, batch_image: torch.Tensor, batch_seg: torch.Tensor, index: int) -> float:
        device = self.parts.device
        image = batch_image.to(device, non_blocking=True)
        seg = batch_seg.to(device, non_blocking=True)
        image, seg = augment_training_batch(
            image, seg, self.parts.augmentation, batch_generator(self.options.seed, index)
        )
        targets = make_targets(seg, self.parts)
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            outputs = self.network(image)
        loss = self.parts.loss([output.float() for output in outputs], targets)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.network.parameters(), TRAINING_GRADIENT_CLIP_NORM)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(loss.detach())

    @torch.no_grad()
    def validation_step(self, batch_image: torch.Tensor, batch_seg: torch.Tensor) -> tuple[float, DiceCounts]:
        device = self.parts.device
        image = batch_image.to(device, non_blocking=True)
        seg = prepare_validation_batch(batch_seg.to(device, non_blocking=True))
        cascade_labels = self.parts.augmentation.previous_stage_labels
        if cascade_labels:
            image, seg = append_previous_stage(image, seg, cascade_labels)
        targets = make_targets(seg, self.parts)
        with self.autocast():
            outputs = [output.float() for output in self.network(image)]
        loss = self.parts.loss(outputs, targets)
        counts = hard_dice_counts(outputs[0], targets[0], self.parts.loss_settings)
        return float(loss), counts

    def run_epoch(self, epoch: int, progress: ProgressCallback, should_stop: ShouldStop) -> EpochRecord:
        options, parts = self.options, self.parts
        started = time.time()
        learning_rate = poly_lr(epoch, options.epochs, options.initial_lr)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate
        self.network.train()
        losses = []
        first = epoch * options.iterations_per_epoch
        with BatchStream(
            parts.train_cases, parts.train_sampling, options.seed, first, pin_memory=self.is_cuda
        ) as stream:
            for iteration in range(options.iterations_per_epoch):
                if should_stop():
                    raise TrainingStopped(f"stopped during epoch {epoch}")
                batch = next(stream)
                losses.append(self.train_step(batch.image, batch.seg, batch.index))
                self.report(progress, epoch, iteration, losses[-1], learning_rate, started)
        self.network.eval()
        val_losses, counts = [], []
        val_seed = options.seed + VALIDATION_STREAM
        first = epoch * options.validation_iterations
        with BatchStream(
            parts.val_cases, parts.val_sampling, val_seed, first, pin_memory=self.is_cuda
        ) as stream:
            for _ in range(options.validation_iterations):
                if should_stop():
                    raise TrainingStopped(f"stopped during validation of epoch {epoch}")
                batch = next(stream)
                loss, batch_counts = self.validation_step(batch.image, batch.seg)
                val_losses.append(loss)
                counts.append(batch_counts)
        total = counts[0]
        for more in counts[1:]:
            total = total + more
        per_class = dice_per_class(total)
        mean_dice = mean_foreground_dice(per_class)
        previous = self.log.entries["ema_fg_dice"][-1] if self.log.entries["ema_fg_dice"] else None
        return EpochRecord(
            train_loss=float(np.mean(losses)),
            val_loss=float(np.mean(val_losses)),
            dice_per_class=[float(d) for d in per_class],
            mean_fg_dice=mean_dice,
            ema_fg_dice=moving_average_dice(previous, mean_dice),
            learning_rate=learning_rate,
            started_at=started,
            ended_at=time.time(),
        )

    def report(
        self, progress: ProgressCallback, epoch: int, iteration: int, loss: float, lr: float, started: float
    ) -> None:
        options = self.options
        done_in_epoch = (iteration + 1) / options.iterations_per_epoch
        fraction = (epoch + done_in_epoch) / options.epochs
        elapsed = time.time() - started
        epochs_left = options.epochs - epoch - done_in_epoch
        # The epoch time includes validation, which a training-only estimate misses; use past epochs.
        durations = self.log.epoch_seconds()
        per_epoch = float(np.mean(durations[-5:])) if durations else elapsed / done_in_epoch
        progress(
            fraction,
            "train",
            f"epoch {epoch + 1}/{options.epochs} iteration {iteration + 1}/{options.iterations_per_epoch}",
            epoch=epoch,
            iteration=iteration,
            loss=loss,
            learning_rate=lr,
            pseudo_dice=self.log.entries["mean_fg_dice"][-1]
            if self.log.entries["mean_fg_dice"]
            else math.nan,
            eta_s=epochs_left * per_epoch,
        )

    def finish_epoch(self, epoch: int, record: EpochRecord) -> None:
        self.log.append(record)
        is_new_best = self.state.best_ema is None or record.ema_fg_dice > self.state.best_ema
        self.state = TrainingState(
            next_epoch=epoch + 1,
            best_ema=record.ema_fg_dice if is_new_best else self.state.best_ema,
        )
        with self.log_path.open("a") as stream:
            stream.write(describe_epoch(epoch, record, is_new_best))
        plot_progress(self.log, self.fold_dir / "progress.png")
        is_last = epoch + 1 == self.options.epochs
        if is_new_best:
            save_checkpoint(self.fold_dir / BEST, self.checkpoint())
        if is_last:
            save_checkpoint(self.fold_dir / FINAL, self.checkpoint())
            (self.fold_dir / LATEST).unlink(missing_ok=True)
        elif (epoch + 1) % self.options.checkpoint_every_epochs == 0:
            save_checkpoint(self.fold_dir / LATEST, self.checkpoint())

    def run(self, progress: ProgressCallback, should_stop: ShouldStop) -> FoldResult:
        for epoch in range(self.state.next_epoch, self.options.epochs):
            record = self.run_epoch(epoch, progress, should_stop)
            self.finish_epoch(epoch, record)
            logger.info(
                "epoch %d: pseudo dice %.4f (ema %.4f)", epoch, record.mean_fg_dice, record.ema_fg_dice
            )
        emas = self.log.entries["ema_fg_dice"]
        return FoldResult(
            fold_dir=self.fold_dir,
            epochs_run=len(emas),
            final_ema_dice=float(emas[-1]) if emas else math.nan,
            best_ema_dice=float(self.state.best_ema) if self.state.best_ema is not None else math.nan,
        )


def fold_folder_name(fold: Fold) -> str:
    return f"fold_{fold}"


def prepare_configuration_dir(preprocessed_dir: Path, configuration_dir: Path) -> None:
    """Copy plans.json, dataset.json and the fingerprint beside the fold folders, as nnU-Net v2 does."""
    configuration_dir.mkdir(parents=True, exist_ok=True)
    for name in ("plans.json", "dataset.json", "dataset_fingerprint.json"):
        source = Path(preprocessed_dir) / name
        if source.is_file() and not (configuration_dir / name).is_file():
            shutil.copyfile(source, configuration_dir / name)


def copy_ground_truth(preprocessed_dir: Path, model_dir: Path) -> None:
    """Keep the reference segmentations with the model, so that model selection needs nothing else."""
    source, target = Path(preprocessed_dir) / GT_FOLDER, Path(model_dir) / GT_FOLDER
    if source.is_dir() and not target.is_dir():
        staging = target.with_name(f".{target.name}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging)
        staging.rename(target)


def train_fold(
    preprocessed_dir: Path,
    configuration: str,
    fold: Fold,
    model_dir: Path,
    options: TrainingOptions,
    is_resume: bool = False,
    progress: ProgressCallback = no_progress,
    should_stop: ShouldStop = lambda: False,
) -> FoldResult:
    """Train `fold` of `configuration` from `preprocessed_dir` (written by `nnsvc plan`) into
    `model_dir/<configuration>/fold_<fold>/`. With `is_resume`, continue from the latest or final
    checkpoint. A model folder holds one folder per configuration, each like nnU-Net v2's
    `Trainer__Plans__Configuration` folder: plans.json and dataset.json beside the fold folders.
    A cascade (3d_cascade_fullres) reads the segmentations that every fold of its previous stage
    (3d_lowres) wrote into `model_dir` during fold validation, and refuses to start without them."""
    preprocessed_dir, model_dir = Path(preprocessed_dir), Path(model_dir)
    plans = load_plans(preprocessed_dir / "plans.json")
    dataset_json = json.loads((preprocessed_dir / "dataset.json").read_text())
    spec = parse_dataset_json(dataset_json)
    configuration_plan: ConfigurationPlan = plans.configuration(configuration)
    is_cascade = configuration_plan.previous_stage is not None
    previous_stage_dir = previous_stage_folder(model_dir, plans, configuration) if is_cascade else None
    fold_dir = model_dir / configuration / fold_folder_name(fold)
    checkpoint_path = resumable_checkpoint(fold_dir) if is_resume else None
    checkpoint = load_checkpoint(checkpoint_path) if checkpoint_path else None
    if checkpoint is not None:
        saved = TrainingOptions.from_json(checkpoint["options"])
        if not saved.differs_only_in_length(options):
            raise CheckpointError(
                f"{checkpoint_path.name}: was trained with other options ({saved.to_json()}); "
                "resume with the same options or train into a new folder"
            )
    elif fold_dir.exists() and any(fold_dir.glob("checkpoint_*.pth")):
        raise CheckpointError(f"{fold_dir}: already holds checkpoints; pass resume to continue it")
    parts = build_parts(preprocessed_dir, plans, spec, configuration, fold, options, previous_stage_dir)
    init_args = {
        "plans": plans.to_json(),
        "configuration": configuration,
        "fold": fold,
        "dataset_json": dataset_json,
    }
    trainer = Trainer(parts, options, fold_dir, init_args)  # refuses what cannot run, writing nothing
    prepare_configuration_dir(preprocessed_dir, model_dir / configuration)
    copy_ground_truth(preprocessed_dir, model_dir)
    fold_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomically(fold_dir / "training_options.json", options.to_json())
    if checkpoint is not None:
        trainer.restore(checkpoint)
    return trainer.run(progress, should_stop)
