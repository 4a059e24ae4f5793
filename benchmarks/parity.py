"""Prediction parity: an nnU-Net v2 model imported into nnsvc, then both predictors on the same cases.

What: nnU-Net v2 trains fold 0 of a 3d_fullres model of the full default network with its own trainer
and preprocessing (a few iterations, starting from weights our trainer made confident, so agreement is
not measured on ties), validates and exports it with its own code; `import_nnunet_model` imports the
export zip. Then, in fresh processes with the same torch thread count, mirroring on and probabilities
written by both, nnU-Net v2's nnUNetPredictor predicts each case from its results folder and our
Predictor from the imported folder: wall and CPU seconds per case (file in, segmentation and
probabilities out; model loading excluded), peak resident memory while predicting (VmHWM reset after
loading; the resident memory at that moment is printed too) and peak GPU memory, per-label Dice
between the segmentations and the largest absolute probability difference. Ours runs in fp32 with
nnU-Net's float16 accumulator (the parity setting: nnU-Net's own operations) and in our default
precision ("auto": bfloat16 or channels-last float32 on the CPU, float16 on CUDA). Last, a cProfile of
one of our predictions (default precision): where our time goes. With --repeat-reference, nnU-Net v2
predicts the cases a second time in a fresh process, and the largest probability difference between its
two runs is printed: the agreement that nnU-Net v2 keeps with itself (on CUDA its cuDNN autotuning picks
kernels afresh in each process, and float16 rounds differently with each kernel).

Data: `core.synthetic`'s CT preset, 5 training cases, and --cases new cases of 40 × 160 × 160 voxels
(benchmarks.predict's model and cases). Why: a service that serves nnU-Net v2 models must give their
answers (Dice ≥ 0.999, probabilities within 1e-3) and should give them faster (target ≥ 3×, peak
memory no higher). CUDA runs too when both environments see a GPU (--device cuda forces it); the
models then train on the GPU.

Usage, from the repository root (reference env in $NNSVC_PARITY_PYTHON or its default place):
  python -m benchmarks.parity [--cases N] [--threads N] [--device auto|cpu|cuda] [--repeat-reference]
                              [--keep DIR]
The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.machine import machine_card
from benchmarks.predict import CONFIGURATION, agreement, make_case, make_model, time_predictions
from core.dataset import load_dataset_json
from core.inference import Predictor
from core.interop import import_nnunet_model
from tests.reference import run_reference

NNUNET_ITERATIONS = 2
PROFILE_LINES = 12
REFERENCE_TIMEOUT_S = 6 * 3600


def nnunet_model(root: Path, iterations: int, device: str) -> tuple[Path, Path]:
    """(nnU-Net's results model folder, its export zip), trained on `device` by nnU-Net from our
    confident model; reused when a kept work folder has them."""
    archive = root / "nnunet" / "model.zip"
    if archive.is_file():
        return next((root / "nnunet" / "results").glob(f"*/*__{CONFIGURATION}")), archive
    ours = make_model(root / "ours", 1, iterations, device)
    inputs = root / "nnunet_inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    shutil.copy(ours / CONFIGURATION / "plans.json", inputs / "plans.json")  # the planned patch size
    for name in ("dataset.json", "dataset_fingerprint.json", "splits_final.json"):
        shutil.copy(root / "ours" / "pre" / name, inputs / name)
    result = run_reference(
        "interop_reference.py",
        "train",
        "--device",
        device,
        str(root / "nnunet"),
        str(root / "ours" / "raw"),
        str(inputs),
        str(ours),
        str(NNUNET_ITERATIONS),
        CONFIGURATION,
        timeout_s=REFERENCE_TIMEOUT_S,
    )
    return Path(result["models"][0]), Path(result["zip"])


def run_ours(model_dir: Path, images: list[Path], out: Path, device: str, precision: str) -> dict:
    """Worker body (a fresh process): each case through our Predictor with probabilities, timed by
    `time_predictions`. fp32 uses nnU-Net's float16 accumulator (the parity setting)."""
    accumulator = torch.float16 if precision == "fp32" else torch.float32
    predictor = Predictor.from_model_dir(
        model_dir, CONFIGURATION, device=device, precision=precision, accumulator_dtype=accumulator
    )
    cases = [(image, out / image.name.replace("_0000", "")) for image in images]
    result = time_predictions(predictor, cases, probabilities=True)
    return {**result, "probabilities": [s.replace(".nii.gz", ".npz") for s in result["segmentations"]]}


def profile_ours(model_dir: Path, image: Path, device: str) -> list[str]:
    """The functions our prediction spends most time in (own time, cProfile), one line each."""
    predictor = Predictor.from_model_dir(model_dir, CONFIGURATION, device=device)
    profiler = cProfile.Profile()
    profiler.runcall(predictor.predict_case, [image])
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(PROFILE_LINES)
    lines = [line.strip() for line in text.getvalue().splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if line.startswith("ncalls"))
    return lines[start : start + PROFILE_LINES + 1]


def worker(args: argparse.Namespace) -> None:
    model_dir, out = Path(args.worker[0]), Path(args.worker[1])
    images = [Path(p) for p in args.worker[2:]]
    if args.profile:
        result: object = profile_ours(model_dir, images[0], args.device)
    else:
        result = run_ours(model_dir, images, out, args.device, args.precision)
    print(json.dumps(result))


def spawn_ours(
    model_dir: Path, images: list[Path], out: Path, device: str, threads: int, *extra: str
) -> object:
    command = [sys.executable, "-m", "benchmarks.parity", "--worker", str(model_dir), str(out)]
    command += [*map(str, images), "--device", device, "--threads", str(threads), *extra]
    environment = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    completed = subprocess.run(command, capture_output=True, text=True, check=True, env=environment)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def probability_difference(first: str, second: str) -> np.ndarray:
    """Largest absolute difference over the classes at each voxel between two saved probability files."""
    return np.abs(np.load(first)["probabilities"] - np.load(second)["probabilities"]).max(0)


def compare(ours: dict, theirs: dict, labels: list[int]) -> list[dict]:
    rows = []
    for index in range(len(ours["seconds"])):
        difference = probability_difference(ours["probabilities"][index], theirs["probabilities"][index])
        rows.append(
            {
                "ours_s": round(ours["seconds"][index], 2),
                "nnunet_s": round(theirs["seconds"][index], 2),
                "speedup": round(theirs["seconds"][index] / ours["seconds"][index], 2),
                "cpu_speedup": round(theirs["cpu_seconds"][index] / ours["cpu_seconds"][index], 2),
                "dice": agreement(ours["segmentations"][index], theirs["segmentations"][index], labels),
                "max_probability_difference": float(difference.max()),
                # Where a case is smaller than the patch its corners get tiny window weights, which
                # nnU-Net's float16 accumulator rounds coarsely (core.inference.sliding_window): the
                # largest differences sit there, so the share of voxels over 1e-3 is printed too.
                "fraction_over_1e-3": round(float((difference > 1e-3).mean()), 5),
            }
        )
    return rows


def memory(ours: dict, theirs: dict) -> dict:
    keys = ("peak_rss_mb", "baseline_rss_mb", "peak_gpu_mb")
    pairs = (("ours", ours), ("nnunet", theirs))
    return {f"{who}_{k}": None if r[k] is None else round(r[k]) for who, r in pairs for k in keys}


def run_nnunet(device: str, nnunet_folder: Path, images: list[Path], out: Path, threads: int) -> dict:
    """nnU-Net v2's predictor on `images` in a fresh reference process, probabilities saved under `out`."""
    job = {
        "models": [str(nnunet_folder)],
        "images": [str(i) for i in images],
        "out": str(out),
        "folds": [0],
        "mirroring": True,
        "threads": threads,
        "device": device,
    }
    job_file = out.with_suffix(".json")
    job_file.write_text(json.dumps(job))
    return run_reference("interop_reference.py", "predict", str(job_file), timeout_s=REFERENCE_TIMEOUT_S)[
        str(nnunet_folder)
    ]


def reference_noise(first: dict, second: dict) -> list[dict]:
    """Per case, how far nnU-Net v2's probabilities move between two of its own runs."""
    rows = []
    for one, other in zip(first["probabilities"], second["probabilities"], strict=True):
        difference = probability_difference(one, other)
        rows.append(
            {
                "max_probability_difference": float(difference.max()),
                "fraction_over_1e-3": round(float((difference > 1e-3).mean()), 5),
            }
        )
    return rows


def bench_device(
    device: str,
    nnunet_folder: Path,
    imported: Path,
    images: list[Path],
    root: Path,
    args: argparse.Namespace,
) -> dict:
    threads = args.threads
    theirs = run_nnunet(device, nnunet_folder, images, root / f"theirs_{device}", threads)
    labels = load_dataset_json(imported / CONFIGURATION / "dataset.json").foreground_labels
    result = {}
    for precision in ("fp32", "auto"):
        out = root / f"ours_{device}_{precision}"
        ours = spawn_ours(imported, images, out, device, threads, "--precision", precision)
        result[precision] = {
            "cases": compare(ours, theirs, list(labels)),
            "ours_stages_s": {k: round(v, 2) for k, v in ours["stages_s"].items()},
            **memory(ours, theirs),
        }
        print(f"{device} {precision}: {json.dumps(result[precision])}", flush=True)
    if args.repeat_reference:
        again = run_nnunet(device, nnunet_folder, images, root / f"theirs_{device}_again", threads)
        result["nnunet_against_itself"] = reference_noise(theirs, again)
        print(f"{device} nnU-Net against itself: {json.dumps(result['nnunet_against_itself'])}", flush=True)
    result["profile_auto"] = spawn_ours(imported, images[:1], root / "profile", device, threads, "--profile")
    return result


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.parity",
        description=__doc__.split("\nUsage")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--cases", type=int, default=1, help="new 40 x 160 x 160 cases to predict (default 1)"
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads, both tools")
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: the CPU, and CUDA if present"
    )
    parser.add_argument("--train-iterations", type=int, default=40, help="our training of the start weights")
    parser.add_argument(
        "--repeat-reference",
        action="store_true",
        help="run nnU-Net v2 twice and report how far its own probabilities move between runs",
    )
    parser.add_argument("--keep", type=Path, help="work folder to keep and reuse (default: a temporary one)")
    parser.add_argument("--worker", nargs="+", metavar="PATH", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_arguments()
    torch.set_num_threads(args.threads)
    if args.worker:
        worker(args)
        return
    devices = ["cpu", "cuda"] if args.device == "auto" and torch.cuda.is_available() else [args.device]
    devices = ["cpu"] if devices == ["auto"] else devices
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_parity_"))
    print(json.dumps(machine_card(devices[-1])), flush=True)
    nnunet_folder, archive = nnunet_model(root, args.train_iterations, devices[-1])  # CUDA when used
    imported = root / "imported"
    if not imported.exists():
        import_nnunet_model(archive, imported)
    images = [
        make_case(root / "cases", f"case{index}", (40, 160, 160), 20 + index) for index in range(args.cases)
    ]
    results = {
        device: bench_device(device, nnunet_folder, imported, images, root, args) for device in devices
    }
    print(json.dumps({"benchmark": "parity", "threads": args.threads, **results}))


if __name__ == "__main__":
    main()
