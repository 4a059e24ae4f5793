"""Reference: a real nnU-Net v2 results folder and export zip, and nnU-Net v2's predictor on model folders.

Usage:
  interop_reference.py train [--device cpu|cuda] SCRATCH RAW_DIR PREPROCESSED_DIR MODEL_DIR ITERATIONS
                             CONFIGURATION...
  interop_reference.py predict JOB_JSON

`train` lays out nnU-Net's folders under SCRATCH with PREPROCESSED_DIR's plans (written by `nnsvc plan`,
nnU-Net v2's layout) as nnUNetPlans and the same splits, and runs nnU-Net's own preprocessing
(train_reference.prepare). For each CONFIGURATION it then trains fold 0 with `nnUNetTrainer_1epoch`
(a shipped variant that changes only the epoch count) for ITERATIONS iterations and one validation
iteration, starting from MODEL_DIR/<CONFIGURATION>/fold_0/checkpoint_final.pth: a network trained to
confident predictions (an untrained one sits near ties everywhere, where two correct predictors
disagree by noise), then trained on by nnU-Net, which writes its checkpoint (numpy scalars in the log
included), plans.json, dataset.json, fingerprint, progress.png and the fold's validation. A
`postprocessing.pkl` is pickled by nnU-Net's own code with its function and label values, as
`determine_postprocessing` writes it (keep the largest component of all foreground labels), into
`crossval_results_folds_0/`, and `export_pretrained_model` writes SCRATCH/model.zip of everything.
nnUNet_compile is off and augmentation runs in the main process. Training runs on the CPU unless
--device cuda.

`predict` reads a JSON job {"models": [MODEL_FOLDER...], "images": [IMAGE...], "out": OUT_DIR,
"folds": [0], "mirroring": true, "threads": 1, "device": "cpu", optional "postprocess":
{"pkl": FILE, "segmentation": FILE, "out": FILE}}. Each model folder is loaded unmodified with
`nnUNetPredictor.initialize_from_trained_model_folder` (so one nnU-Net cannot load fails here) and
predicts each image sequentially with probabilities into OUT_DIR/<model folder name>/; the optional
postprocessing loads a `postprocessing.pkl` with nnU-Net's loader and applies it with nnU-Net's
function. Reports per model: wall and CPU seconds per image, peak resident memory while predicting
(process_stats, reset after the model is loaded) and peak GPU memory, the files written.

The last stdout line is JSON. Runs only in the reference environment.
"""

import json
import os
import shutil
import sys
import time
from pathlib import Path

from preprocess_reference import DATASET
from process_stats import cpu_seconds, peak_rss_mb, reset_peak_rss
from train_reference import point_to, prepare

TRAINER = "nnUNetTrainer_1epoch"


def preprocess(root: Path, raw_dir: Path, preprocessed_dir: Path, configurations: list[str]) -> None:
    """nnU-Net's preprocessing of each configuration, and the reference labels validation reads (as
    nnU-Net's `preprocess_dataset` copies them)."""
    prepare(root, raw_dir, preprocessed_dir, configurations[0], 1)
    shutil.copytree(raw_dir / "labelsTr", root / "preprocessed" / DATASET / "gt_segmentations")
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor

    for configuration in configurations[1:]:
        preprocessor = DefaultPreprocessor(verbose=False)
        preprocessor.show_progress_bar = False
        preprocessor.run(DATASET, configuration, "nnUNetPlans", 1)


def train_fold_0(root: Path, configuration: str, start_weights: Path, iterations: int, device: str) -> Path:
    import torch
    from nnunetv2.training.nnUNetTrainer.variants.training_length.nnUNetTrainer_Xepochs import (
        nnUNetTrainer_1epoch,
    )

    base = root / "preprocessed" / DATASET
    plans = json.loads((base / "nnUNetPlans.json").read_text())
    plans["continue_training"] = False  # nnunetv2.run.run_training sets this before building the trainer
    dataset_json = json.loads((base / "dataset.json").read_text())
    trainer = nnUNetTrainer_1epoch(plans, configuration, 0, dataset_json, torch.device(device))
    trainer.num_iterations_per_epoch = iterations
    trainer.num_val_iterations_per_epoch = 1
    trainer.initialize()
    weights = torch.load(start_weights, map_location="cpu", weights_only=True)["network_weights"]
    trainer.network.load_state_dict(weights)
    trainer.run_training()
    trainer.perform_actual_validation(save_probabilities=False)
    return Path(trainer.output_folder_base)


def save_postprocessing(model_folder: Path) -> Path:
    """What determine_postprocessing pickles when removing all but the largest foreground component wins."""
    from batchgenerators.utilities.file_and_folder_operations import save_pickle
    from nnunetv2.postprocessing.remove_connected_components import (
        remove_all_but_largest_component_from_segmentation,
    )
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    dataset_json = json.loads((model_folder / "dataset.json").read_text())
    labels = PlansManager(str(model_folder / "plans.json")).get_label_manager(dataset_json).foreground_labels
    target = model_folder / "crossval_results_folds_0" / "postprocessing.pkl"
    target.parent.mkdir()
    save_pickle(
        ([remove_all_but_largest_component_from_segmentation], [{"labels_or_regions": labels}]), target
    )
    return target


def train(
    root: Path,
    raw_dir: Path,
    preprocessed_dir: Path,
    model_dir: Path,
    iterations: int,
    configurations: list[str],
    device: str,
) -> dict:
    point_to(root)
    os.environ.update({"nnUNet_compile": "f", "nnUNet_def_n_proc": "1", "nnUNet_n_proc_DA": "0"})
    start = time.perf_counter()
    preprocess(root, raw_dir, preprocessed_dir, configurations)
    timings = {"preprocess_seconds": time.perf_counter() - start}
    folders = []
    for configuration in configurations:
        mark = time.perf_counter()
        start_weights = model_dir / configuration / "fold_0" / "checkpoint_final.pth"
        folders.append(train_fold_0(root, configuration, start_weights, iterations, device))
        save_postprocessing(folders[-1])
        timings[f"{configuration}_seconds"] = time.perf_counter() - mark
    from nnunetv2.model_sharing.model_export import export_pretrained_model

    archive = root / "model.zip"
    export_pretrained_model(DATASET, str(archive), configurations=configurations, trainer=TRAINER, folds=(0,))
    return {"models": [str(f) for f in folders], "zip": str(archive), **timings}


def predict(job: dict) -> dict:
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    torch.set_num_threads(int(job["threads"]))
    device = torch.device(job["device"])
    results = {}
    for folder in job["models"]:
        predictor = nnUNetPredictor(
            use_mirroring=bool(job["mirroring"]),
            perform_everything_on_device=device.type == "cuda",
            device=device,
            allow_tqdm=False,
        )
        predictor.initialize_from_trained_model_folder(folder, job["folds"], "checkpoint_final.pth")
        ending = predictor.dataset_json["file_ending"]
        out_dir = Path(job["out"]) / Path(folder).name
        out_dir.mkdir(parents=True, exist_ok=True)
        identifiers = [Path(image).name[: -len(ending)].rsplit("_", 1)[0] for image in job["images"]]
        baseline = reset_peak_rss()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        seconds, cpu = [], []
        for image, identifier in zip(job["images"], identifiers, strict=True):
            start, start_cpu = time.perf_counter(), cpu_seconds()
            predictor.predict_from_files_sequential(
                [[image]], [str(out_dir / identifier)], save_probabilities=True, overwrite=True
            )
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds.append(time.perf_counter() - start)
            cpu.append(cpu_seconds() - start_cpu)
        results[folder] = {
            "seconds": seconds,
            "cpu_seconds": cpu,
            "peak_rss_mb": peak_rss_mb(),
            "baseline_rss_mb": baseline,
            "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None,
            "segmentations": [str(out_dir / f"{i}{ending}") for i in identifiers],
            "probabilities": [str(out_dir / f"{i}.npz") for i in identifiers],
        }
    if job.get("postprocess"):
        results["postprocess"] = postprocess(**job["postprocess"])
    return results


def postprocess(pkl: str, segmentation: str, out: str) -> dict:
    import SimpleITK as sitk
    from batchgenerators.utilities.file_and_folder_operations import load_pickle
    from nnunetv2.postprocessing.remove_connected_components import apply_postprocessing

    functions, kwargs = load_pickle(pkl)
    image = sitk.ReadImage(segmentation)
    written = sitk.GetImageFromArray(apply_postprocessing(sitk.GetArrayFromImage(image), functions, kwargs))
    written.CopyInformation(image)
    sitk.WriteImage(written, out)
    return {"functions": [f.__name__ for f in functions], "kwargs": repr(kwargs), "out": out}


def main() -> None:
    command, args = sys.argv[1], sys.argv[2:]
    if command == "train":
        device = "cpu"
        if args[0] == "--device":
            device, args = args[1], args[2:]
        root, raw_dir, preprocessed_dir, model_dir = (Path(a).resolve() for a in args[:4])
        result = train(root, raw_dir, preprocessed_dir, model_dir, int(args[4]), args[5:], device)
    elif command == "predict":
        result = predict(json.loads(Path(args[0]).read_text()))
    else:
        raise SystemExit(f"unknown command {command!r}; use train or predict")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
