"""Prediction speed and memory: nnsvc's Predictor against nnU-Net v2's nnUNetPredictor, same weights.

What: for each case, from image file to written segmentation (read, preprocess, sliding window with
mirroring on, export, write; model loading excluded), the wall-clock and CPU seconds, the peak
resident memory of the predicting process (VmHWM, reset after the model is loaded, each tool in its
own fresh process) and its resident memory at that reset (libraries and model, included in the
peak), where our time goes (preprocess / sliding window / rest), and the agreement between the two
segmentations (Dice per label, 1 where both are empty). Both tools run on the same device (--device)
with the same torch thread count and environment; we use our default precision ("auto": bfloat16 on
CPUs that compute it natively, float16 on CUDA), nnU-Net v2 float32 on the CPU and float16 on CUDA, as
it always does. On CUDA the peak GPU memory of each is printed too. CPU seconds are printed beside
wall seconds because this machine may be shared: under load the wall ratio drifts, the CPU ratio less.

Data and weights: `core.synthetic`'s CT preset (about 40 × 160 × 160 voxels at 3 × 0.75 × 0.75 mm),
planned by our planner (3d_fullres, the full default network) and trained by our trainer for
--train-iterations iterations, so that its predictions are confident (an untrained network's class
scores are near ties, where any two correct predictors disagree). To keep that short it trains on
16 × 96 × 96 patches; a U-Net's weights do not depend on the patch size, and both tools predict with
the planned patch. "ct" is a new case of the preset;
"large" is --large-shape voxels (default 300 × 512 × 512). With the full network the large case needs
about 390 windows × 8 mirrored passes per tool: hours on a small CPU. So by default the large case uses
the same plans with every stage's feature count divided by --large-width-divisor (its own model,
trained the same way): window count, accumulators, resampling, export and I/O are a real large case's,
the convolutions are cheaper, so its speed ratio is lower than the full network's. Pass
--large-width-divisor 1 for the real network (the CT case's model; minutes on a GPU). "coarse" is the
full network on a large case with fewer windows, as when a model planned on coarse data (such as fast
whole-body models) meets a thin-slice scan: --large-shape voxels at 1 x 0.75 x 0.75 mm, predicted by a
model planned and trained on the CT preset at 3 x 1.5 x 1.5 mm, so both tools resample the volume to a
third of its slices and half its rows and columns, and the probabilities back (about 24 windows).
Both tools predict from the same weights in the same run. Models train on --device.
Target (issue 4): ≥3× nnU-Net v2's speed with mirroring on, Dice agreement ≥ 0.999, no more peak memory.

Usage, from the repository root (reference env in $NNSVC_PARITY_PYTHON or its default place):
  python -m benchmarks.predict [--cases ct large coarse] [--device cpu|cuda] [--threads N]
                               [--train-iterations N] [--large-shape Z Y X] [--large-width-divisor D]
                               [--keep DIR]
--keep DIR keeps (and on a rerun reuses) the trained models and cases. The last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch

from benchmarks.machine import machine_card
from core.dataset import load_dataset_json
from core.files import write_json_atomically
from core.inference import Predictor
from core.io import write_image
from core.pipeline import PlanOptions, plan_and_preprocess
from core.synthetic import PRESETS, draw_case, generate_dataset
from core.training.checkpoints import BEST, FINAL, load_checkpoint, save_checkpoint
from core.training.options import TrainingOptions
from core.training.trainer import train_fold
from tests.reference import run_reference
from tests.reference_scripts.process_stats import cpu_seconds, peak_rss_mb, reset_peak_rss

CONFIGURATION = "3d_fullres"
ITERATIONS_PER_EPOCH = 4
# Training patch: the network's weights do not depend on the patch size, and this one costs about a
# tenth of the planned 48 x 160 x 192 per iteration; prediction uses the planned patch.
TRAINING_PATCH = (16, 96, 96)
REFERENCE_TIMEOUT_S = 6 * 3600
# the "coarse" case: a thin-slice scan predicted by a model planned on coarser data
THIN_SLICE_SPACING = (1.0, 0.75, 0.75)
COARSE_MODEL_SPACING = (3.0, 1.5, 1.5)


def make_model(
    root: Path,
    width_divisor: int,
    iterations: int,
    device: str = "cpu",
    spacing_mm: tuple[float, float, float] = PRESETS["ct"].spacing_mm,
) -> Path:
    """Plan generated CT-like cases at `spacing_mm` (3d_fullres), divide the feature counts by
    `width_divisor`, train fold 0 on `device` for `iterations` iterations on TRAINING_PATCH, then make
    its best epoch the final checkpoint, with the planned patch size back in the plans; returns the
    model folder. Reused when there."""
    model = root / "model"
    checkpoint_path = model / CONFIGURATION / "fold_0" / FINAL
    if checkpoint_path.is_file():
        return model
    generate_dataset(root / "raw", replace(PRESETS["ct"], num_cases=5, spacing_mm=spacing_mm), seed=11)
    plan_and_preprocess(root / "raw", root / "pre", PlanOptions(workers=1, configurations=(CONFIGURATION,)))
    plans = json.loads((root / "pre" / "plans.json").read_text())
    configuration = plans["configurations"][CONFIGURATION]
    kwargs = configuration["architecture"]["arch_kwargs"]
    kwargs["features_per_stage"] = [max(2, f // width_divisor) for f in kwargs["features_per_stage"]]
    planned_patch, configuration["patch_size"] = configuration["patch_size"], list(TRAINING_PATCH)
    write_json_atomically(root / "pre" / "plans.json", plans)
    epochs = max(1, iterations // ITERATIONS_PER_EPOCH)
    # float32 on every device: the timings compare prediction, not training (core.precision)
    options = TrainingOptions(
        epochs=epochs,
        iterations_per_epoch=ITERATIONS_PER_EPOCH,
        validation_iterations=1,
        seed=1,
        device=device,
        precision="fp32",
    )
    train_fold(root / "pre", CONFIGURATION, 0, model, options)
    configuration["patch_size"] = planned_patch
    write_json_atomically(model / CONFIGURATION / "plans.json", plans)
    # so short a run can end past its best epoch (collapsed to all background): keep the best one
    checkpoint = load_checkpoint(checkpoint_path.with_name(BEST))
    checkpoint["init_args"] = {**checkpoint["init_args"], "plans": plans}
    save_checkpoint(checkpoint_path, checkpoint)
    return model


def make_case(
    folder: Path,
    name: str,
    shape: tuple[int, int, int],
    seed: int,
    spacing_mm: tuple[float, float, float] = PRESETS["ct"].spacing_mm,
) -> Path:
    path = folder / f"{name}_0000.nii.gz"
    if not path.is_file():
        spec = replace(
            PRESETS["ct"], shape=shape, spacing_mm=spacing_mm, spacing_jitter=0.05, shape_jitter=0.0
        )
        channels, _, geometry = draw_case(spec, np.random.default_rng(seed))
        write_image(channels[0], geometry, path)
    return path


def timed(stages: dict[str, float], name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """`function`, adding its seconds to `stages[name]` at every call."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        result = function(*args, **kwargs)
        stages[name] = stages.get(name, 0.0) + time.perf_counter() - start
        return result

    return wrapper


def time_predictions(
    predictor: Predictor, cases: list[tuple[Path, Path]], probabilities: bool = False
) -> dict:
    """Each (image, segmentation path) through `predict_to_file` in turn, in this process: wall and CPU
    seconds per case, seconds per stage over all cases, and the peak resident memory (reset here, after
    the model loaded; the resident memory at the reset is returned too) and peak GPU memory."""
    stages: dict[str, float] = {}
    predictor.preprocess = timed(stages, "preprocess_s", predictor.preprocess)
    predictor.predict_logits = timed(stages, "sliding_window_s", predictor.predict_logits)
    on_gpu = predictor.device.type == "cuda"
    baseline = reset_peak_rss()
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    seconds, used_cpu, segmentations = [], [], []
    for image, out in cases:
        out.parent.mkdir(parents=True, exist_ok=True)
        start, start_cpu = time.perf_counter(), cpu_seconds()
        segmentations.append(str(predictor.predict_to_file([image], out, probabilities)))
        if on_gpu:
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
        used_cpu.append(cpu_seconds() - start_cpu)
    stages["read_export_write_s"] = sum(seconds) - sum(stages.values())
    return {
        "seconds": seconds,
        "cpu_seconds": used_cpu,
        "peak_rss_mb": peak_rss_mb(),
        "baseline_rss_mb": baseline,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if on_gpu else None,
        "stages_s": stages,
        "segmentations": segmentations,
    }


def run_ours(model_dir: Path, image: Path, out_dir: Path, device: str, precision: str) -> dict:
    """Worker body (a fresh process): one case through our Predictor, timed by `time_predictions`."""
    predictor = Predictor.from_model_dir(model_dir, CONFIGURATION, device=device, precision=precision)
    return time_predictions(predictor, [(image, out_dir / image.name.replace("_0000", ""))])


def agreement(ours: str, theirs: str, labels: list[int]) -> dict[int, float]:
    a = sitk.GetArrayFromImage(sitk.ReadImage(ours))
    b = sitk.GetArrayFromImage(sitk.ReadImage(theirs))
    dice = {}
    for label in labels:
        total = int((a == label).sum() + (b == label).sum())
        dice[label] = 1.0 if total == 0 else round(float(2 * ((a == label) & (b == label)).sum() / total), 6)
    return dice


def bench_case(name: str, model_dir: Path, image: Path, root: Path, args: argparse.Namespace) -> dict:
    environment = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    command = [sys.executable, "-m", "benchmarks.predict", "--worker", str(model_dir), str(image)]
    command += [str(root / f"ours_{name}"), "--device", args.device, "--threads", str(args.threads)]
    command += ["--precision", args.precision]
    completed = subprocess.run(command, capture_output=True, text=True, check=True, env=environment)
    ours = json.loads(completed.stdout.strip().splitlines()[-1])
    theirs = run_reference(
        "predict_reference.py",
        str(model_dir / CONFIGURATION),
        str(root / f"theirs_{name}"),
        "0",
        "1",
        str(args.threads),
        str(image),
        "--no-probabilities",
        "--device",
        args.device,
        timeout_s=REFERENCE_TIMEOUT_S,
    )
    labels = load_dataset_json(model_dir / CONFIGURATION / "dataset.json").foreground_labels
    pairs = (("ours", ours), ("nnunet", theirs))
    result = {
        "shape": list(sitk.ReadImage(str(image)).GetSize())[::-1],
        "ours_s": round(ours["seconds"][0], 2),
        "nnunet_s": round(theirs["seconds"], 2),
        "speedup": round(theirs["seconds"] / ours["seconds"][0], 2),
        "ours_cpu_s": round(ours["cpu_seconds"][0], 2),
        "nnunet_cpu_s": round(theirs["cpu_seconds"], 2),
        "cpu_speedup": round(theirs["cpu_seconds"] / ours["cpu_seconds"][0], 2),
        "ours_peak_rss_mb": round(ours["peak_rss_mb"]),
        "nnunet_peak_rss_mb": round(theirs["peak_rss_mb"]),
        "ours_baseline_rss_mb": round(ours["baseline_rss_mb"]),
        "nnunet_baseline_rss_mb": round(theirs["baseline_rss_mb"]),
        **{f"{who}_peak_gpu_mb": round(r["peak_gpu_mb"]) for who, r in pairs if r["peak_gpu_mb"] is not None},
        "ours_stages_s": {k: round(v, 2) for k, v in ours["stages_s"].items()},
        "dice": agreement(ours["segmentations"][0], theirs["segmentation"], list(labels)),
    }
    print(f"{name}: {json.dumps(result)}", flush=True)
    return result


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.predict",
        description=__doc__.split("\nUsage")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--cases",
        nargs="+",
        choices=["ct", "large", "coarse"],
        default=["ct", "large"],
        help="which cases (default ct and large)",
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="both tools' device")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "fp16"],
        help="our precision (default auto)",
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads, both tools")
    parser.add_argument(
        "--train-iterations", type=int, default=40, help="training iterations of each model (default 40)"
    )
    parser.add_argument("--large-shape", type=int, nargs=3, default=(300, 512, 512), help="z y x voxels")
    parser.add_argument(
        "--large-width-divisor",
        type=int,
        default=8,
        help="the large case's network has the plans' feature counts divided by this (1: the full network)",
    )
    parser.add_argument("--keep", type=Path, help="work folder to keep and reuse (default: a temporary one)")
    parser.add_argument("--worker", nargs=3, metavar=("MODEL_DIR", "IMAGE", "OUT"), help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_arguments()
    torch.set_num_threads(args.threads)
    if args.worker:
        model_dir, image, out = (Path(p) for p in args.worker)
        result = json.dumps(run_ours(model_dir, image, out, args.device, args.precision))
        (out / "result.json").write_text(result)
        print(result)
        return
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_predict_"))
    print(json.dumps(machine_card(args.device)), flush=True)
    results = {}
    if "ct" in args.cases:
        model = make_model(root / "ct", 1, args.train_iterations, args.device)
        image = make_case(root / "cases", "ct", (40, 160, 160), 5)
        results["ct"] = bench_case("ct", model, image, root, args)
    if "large" in args.cases:
        divisor = args.large_width_divisor
        folder = root / ("ct" if divisor == 1 else f"large_width_{divisor}")  # width 1 is the CT model
        model = make_model(folder, divisor, args.train_iterations, args.device)
        image = make_case(root / "cases", "large", tuple(args.large_shape), 6)
        results["large"] = {"width_divisor": divisor, **bench_case("large", model, image, root, args)}
    if "coarse" in args.cases:
        model = make_model(root / "coarse", 1, args.train_iterations, args.device, COARSE_MODEL_SPACING)
        image = make_case(root / "cases", "coarse", tuple(args.large_shape), 7, THIN_SLICE_SPACING)
        results["coarse"] = bench_case("coarse", model, image, root, args)
    print(
        json.dumps({"benchmark": "predict", "threads": args.threads, "precision": args.precision, **results})
    )


if __name__ == "__main__":
    main()
