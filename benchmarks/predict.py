"""Prediction speed and memory: nnsvc's Predictor against nnU-Net v2's nnUNetPredictor, same weights.

What: wall-clock seconds for one case from image file to written segmentation (read, preprocess,
sliding window with mirroring on, export, write; model loading excluded), the peak resident memory of
the predicting process (each tool runs in its own fresh subprocess, `ru_maxrss`), where our time goes
(preprocess / network windows / export / write), and the agreement between the two segmentations
(per-label Dice) and probabilities (largest absolute difference).

Data and weights: `core.synthetic`'s CT preset (about 40 × 160 × 160 voxels at 3 × 0.75 × 0.75 mm),
planned by our planner (3d_fullres) and trained for one short epoch by our trainer; the "ct" case is
a new case of the preset. The "large" case is 300 × 512 × 512 voxels (--large-shape): on this CPU the
default network would need thousands of full-width forward passes per tool (hours), so for it the
network's feature widths are divided by --large-width-divisor (random weights): the window count,
accumulators, resampling, export and I/O are those of a real large case, the convolutions are cheaper.
Both tools get the same torch thread count. Why: prediction is what a service does per request; the
target is ≥3× nnU-Net v2 with mirroring on, Dice agreement ≥ 0.999, and no more peak memory.

Usage, from the repository root (reference env in $NNSVC_PARITY_PYTHON):
  python -m benchmarks.predict [--device cpu|cuda] [--threads N] [--skip-large] [--keep DIR]
The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from core.files import write_json_atomically
from core.inference import Predictor
from core.inference.export import export_logits
from core.io import read_image, write_image, write_segmentation
from core.network import build_network
from core.pipeline import PlanOptions, plan_and_preprocess
from core.plans import load_plans
from core.synthetic import PRESETS, draw_case, generate_dataset
from core.training.checkpoints import FINAL, load_checkpoint, save_checkpoint
from core.training.options import TrainingOptions
from core.training.trainer import train_fold
from tests.reference import run_reference

CONFIGURATION = "3d_fullres"


def peak_rss_mb() -> float:
    """VmHWM of this process: unlike ru_maxrss it is not inherited from the parent across exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_model(root: Path) -> Path:
    """Plan and briefly train a 3d_fullres model on generated CT-like cases; its configuration folder."""
    spec = replace(PRESETS["ct"], num_cases=5)
    generate_dataset(root / "raw", spec, seed=11)
    plan_and_preprocess(root / "raw", root / "pre", PlanOptions(workers=1, configurations=(CONFIGURATION,)))
    options = TrainingOptions(epochs=1, iterations_per_epoch=2, validation_iterations=1, seed=1, device="cpu")
    train_fold(root / "pre", CONFIGURATION, 0, root / "model", options)
    return root / "model" / CONFIGURATION


def narrow_model(source: Path, target: Path, divisor: int) -> Path:
    """A copy of a configuration folder whose network is `divisor` times narrower (random weights)."""
    target.mkdir(parents=True, exist_ok=True)
    plans = json.loads((source / "plans.json").read_text())
    kwargs = plans["configurations"][CONFIGURATION]["architecture"]["arch_kwargs"]
    kwargs["features_per_stage"] = [max(2, f // divisor) for f in kwargs["features_per_stage"]]
    write_json_atomically(target / "plans.json", plans)
    for name in ("dataset.json", "dataset_fingerprint.json"):
        (target / name).write_bytes((source / name).read_bytes())
    checkpoint = load_checkpoint(source / "fold_0" / FINAL)
    configuration = load_plans(target / "plans.json").configuration(CONFIGURATION)
    torch.manual_seed(0)
    network = build_network(configuration, 1, 3)
    checkpoint["network_weights"] = network.state_dict()
    checkpoint["init_args"] = {**checkpoint["init_args"], "plans": plans}
    save_checkpoint(target / "fold_0" / FINAL, checkpoint)
    return target


def make_case(folder: Path, name: str, shape: tuple[int, int, int], seed: int) -> Path:
    spec = replace(PRESETS["ct"], shape=shape, spacing_jitter=0.05, shape_jitter=0.0)
    channels, _, geometry = draw_case(spec, np.random.default_rng(seed))
    path = folder / f"{name}_0000.nii.gz"
    write_image(channels[0], geometry, path)
    return path


def run_ours(configuration_dir: Path, image: Path, out_dir: Path, device: str) -> dict:
    """Worker body (a fresh process): one case, timed by stage."""
    predictor = Predictor.from_model_dir(configuration_dir.parent, CONFIGURATION, device=device)
    times = {}
    start = time.perf_counter()
    data, geometry = read_image([image])
    work, properties = predictor.preprocess(data, geometry)
    times["read_and_preprocess_s"] = time.perf_counter() - start
    mark = time.perf_counter()
    logits = predictor.predict_logits(work)
    if predictor.device.type == "cuda":
        torch.cuda.synchronize()
    times["sliding_window_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    segmentation, probabilities = export_logits(
        logits, properties, predictor.plans, CONFIGURATION, predictor.layout, return_probabilities=True
    )
    times["export_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    identifier = image.name.removesuffix("_0000.nii.gz")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_segmentation(segmentation, geometry, out_dir / f"{identifier}.nii.gz")
    np.save(out_dir / f"{identifier}_probabilities.npy", probabilities)
    times["write_s"] = time.perf_counter() - mark
    return {
        "seconds": time.perf_counter() - start,
        "peak_rss_mb": peak_rss_mb(),
        "stages": times,
        "segmentation": str(out_dir / f"{identifier}.nii.gz"),
        "probabilities": str(out_dir / f"{identifier}_probabilities.npy"),
    }


def compare(ours: dict, theirs: dict) -> dict:
    a = sitk.GetArrayFromImage(sitk.ReadImage(ours["segmentation"]))
    b = sitk.GetArrayFromImage(sitk.ReadImage(theirs["segmentation"]))
    dice = {}
    for label in (1, 2):
        total = (a == label).sum() + (b == label).sum()
        dice[label] = 1.0 if total == 0 else float(2 * ((a == label) & (b == label)).sum() / total)
    p = np.load(ours["probabilities"])
    q = np.load(theirs["probabilities"])["probabilities"]
    return {"dice": dice, "max_probability_difference": float(np.abs(p - q).max())}


def bench_case(name: str, configuration_dir: Path, image: Path, root: Path, args: argparse.Namespace) -> dict:
    command = [sys.executable, "-m", "benchmarks.predict", "--worker", str(configuration_dir), str(image)]
    command += [str(root / f"ours_{name}"), "--device", args.device, "--threads", str(args.threads)]
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    ours = json.loads(completed.stdout.strip().splitlines()[-1])
    theirs = run_reference(
        "predict_reference.py",
        str(configuration_dir),
        str(root / f"theirs_{name}"),
        "0",
        "1",
        str(args.threads),
        str(image),
        timeout_s=7200,
    )
    result = {
        "shape": list(sitk.ReadImage(str(image)).GetSize())[::-1],
        "ours_s": round(ours["seconds"], 2),
        "nnunet_s": round(theirs["seconds"], 2),
        "speedup": round(theirs["seconds"] / ours["seconds"], 2),
        "ours_peak_rss_mb": round(ours["peak_rss_mb"]),
        "nnunet_peak_rss_mb": round(theirs["peak_rss_mb"]),
        "ours_stages_s": {k: round(v, 2) for k, v in ours["stages"].items()},
        **compare(ours, theirs),
    }
    print(f"{name}: {json.dumps(result)}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="our device (nnU-Net: CPU)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads, both tools")
    parser.add_argument("--large-shape", type=int, nargs=3, default=(300, 512, 512), help="z y x voxels")
    parser.add_argument("--large-width-divisor", type=int, default=8, help="network narrowing, large case")
    parser.add_argument("--skip-large", action="store_true", help="only the CT-like case")
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    parser.add_argument("--worker", nargs=3, metavar=("CONFIG_DIR", "IMAGE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        folder, image, out = (Path(p) for p in args.worker)
        print(json.dumps(run_ours(folder, image, out, args.device)))
        return
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_predict_"))
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, threads {args.threads}, device {args.device}"
    )
    model = make_model(root)
    results = {"ct": bench_case("ct", model, make_case(root / "cases", "ct", (40, 160, 160), 5), root, args)}
    if not args.skip_large:
        narrow = narrow_model(model, root / "narrow" / CONFIGURATION, args.large_width_divisor)
        image = make_case(root / "cases", "large", tuple(args.large_shape), 6)
        results["large"] = bench_case("large", narrow, image, root, args)
    print(json.dumps({"benchmark": "predict", "threads": args.threads, "device": args.device, **results}))


if __name__ == "__main__":
    main()
