"""nnU-Net v2's predictor on one case with weights trained by nnsvc (runs in the reference env).

Usage: predict_reference.py CONFIGURATION_DIR OUT_DIR FOLDS(comma) MIRRORING(0/1) THREADS IMAGE...
       [--no-probabilities] [--device cpu|cuda]

Our configuration folder already has nnU-Net's layout (plans.json, dataset.json, fold_K/checkpoint);
only the checkpoint's trainer_name is ours, so the folder is copied with trainer_name set to
nnUNetTrainer. Prediction is sequential (no worker processes) on the CPU, or with --device cuda
everything on the GPU as nnU-Net does by default there, with probabilities saved unless
--no-probabilities. `seconds` and `cpu_seconds` cover `predict_from_files_sequential` (read,
preprocess, sliding window, export, write); `peak_rss_mb` is the process's peak resident memory during
that call (VmHWM, reset after the model is loaded), `peak_gpu_mb` the GPU's (None on the CPU).
Last stdout line (and OUT_DIR/result.json): JSON {seconds, cpu_seconds, peak_rss_mb, baseline_rss_mb
(resident memory when the peak was reset), peak_gpu_mb, segmentation, probabilities}.
"""

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from process_stats import cpu_seconds, peak_rss_mb, reset_peak_rss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("configuration_dir")
    parser.add_argument("out_dir")
    parser.add_argument("folds")
    parser.add_argument("mirroring", choices=["0", "1"])
    parser.add_argument("threads", type=int)
    parser.add_argument("images", nargs="+")
    parser.add_argument("--no-probabilities", action="store_true")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    copy = Path(tempfile.mkdtemp()) / "model"
    shutil.copytree(args.configuration_dir, copy)
    fold_names = args.folds.split(",")
    for fold in fold_names:
        path = copy / f"fold_{fold}" / "checkpoint_final.pth"
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        checkpoint["trainer_name"] = "nnUNetTrainer"
        torch.save(checkpoint, path)
        del checkpoint
    predictor = nnUNetPredictor(
        tile_step_size=0.5,
        use_gaussian=True,
        use_mirroring=args.mirroring == "1",
        perform_everything_on_device=device.type == "cuda",
        device=device,
        allow_tqdm=False,
    )
    predictor.initialize_from_trained_model_folder(
        str(copy), [f if f == "all" else int(f) for f in fold_names], "checkpoint_final.pth"
    )
    ending = json.loads((copy / "dataset.json").read_text())["file_ending"]
    identifier = Path(args.images[0]).name[: -len(ending)].rsplit("_", 1)[0]
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    save_probabilities = not args.no_probabilities
    baseline = reset_peak_rss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start, start_cpu = time.perf_counter(), cpu_seconds()
    predictor.predict_from_files_sequential(
        [args.images],
        [str(Path(args.out_dir) / identifier)],
        save_probabilities=save_probabilities,
        overwrite=True,
    )
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds, used_cpu = time.perf_counter() - start, cpu_seconds() - start_cpu
    peak = peak_rss_mb()
    shutil.rmtree(copy.parent)
    result = {
        "seconds": seconds,
        "cpu_seconds": used_cpu,
        "peak_rss_mb": peak,
        "baseline_rss_mb": baseline,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None,
        "segmentation": str(Path(args.out_dir) / f"{identifier}{ending}"),
        "probabilities": str(Path(args.out_dir) / f"{identifier}.npz") if save_probabilities else None,
    }
    (Path(args.out_dir) / "result.json").write_text(json.dumps(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
