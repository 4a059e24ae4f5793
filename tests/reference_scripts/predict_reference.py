"""nnU-Net v2's predictor on one case with weights trained by nnsvc (runs in the reference env).

Usage: predict_reference.py CONFIGURATION_DIR OUT_DIR FOLDS(comma) MIRRORING(0/1) THREADS IMAGE...

Our configuration folder already has nnU-Net's layout (plans.json, dataset.json, fold_K/checkpoint);
only the checkpoint's trainer_name is ours, so the folder is copied with trainer_name set to
nnUNetTrainer. Prediction is sequential on the CPU (no worker processes), with probabilities saved.
Last stdout line: JSON {seconds, peak_rss_mb, segmentation, probabilities}.
"""

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor


def peak_rss_mb() -> float:
    """VmHWM of this process: unlike ru_maxrss it is not inherited from the parent across exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    configuration_dir, out_dir, folds, mirroring, threads = sys.argv[1:6]
    images = sys.argv[6:]
    torch.set_num_threads(int(threads))
    copy = Path(tempfile.mkdtemp()) / "model"
    shutil.copytree(configuration_dir, copy)
    fold_names = folds.split(",")
    for fold in fold_names:
        path = copy / f"fold_{fold}" / "checkpoint_final.pth"
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        checkpoint["trainer_name"] = "nnUNetTrainer"
        torch.save(checkpoint, path)
    predictor = nnUNetPredictor(
        tile_step_size=0.5,
        use_gaussian=True,
        use_mirroring=mirroring == "1",
        perform_everything_on_device=False,
        device=torch.device("cpu"),
        allow_tqdm=False,
    )
    predictor.initialize_from_trained_model_folder(
        str(copy), [f if f == "all" else int(f) for f in fold_names], "checkpoint_final.pth"
    )
    ending = json.loads((copy / "dataset.json").read_text())["file_ending"]
    identifier = Path(images[0]).name[: -len(ending)].rsplit("_", 1)[0]
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    predictor.predict_from_files_sequential(
        [images], [str(Path(out_dir) / identifier)], save_probabilities=True, overwrite=True
    )
    seconds = time.perf_counter() - start
    shutil.rmtree(copy.parent)
    result = {
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "segmentation": str(Path(out_dir) / f"{identifier}{ending}"),
        "probabilities": str(Path(out_dir) / f"{identifier}.npz"),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
