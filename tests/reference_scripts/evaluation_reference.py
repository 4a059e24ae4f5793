"""Reference: nnU-Net v2's evaluation and postprocessing choice on label files.

Usage: evaluation_reference.py evaluate REF_DIR PRED_DIR DATASET_JSON
       evaluation_reference.py postprocess REF_DIR PRED_DIR DATASET_JSON

`evaluate` runs `compute_metrics_on_folder` with the labels or regions and ignore label of the
dataset.json and prints the summary as `save_summary_json` would write it. `postprocess` runs
`determine_postprocessing` on a copy of PRED_DIR and prints the chosen functions' kwargs and the
foreground mean Dice before and after. Runs only in the reference environment; one JSON line.
"""

import json
import shutil
import sys
import tempfile
from pathlib import Path


def targets_and_ignore(dataset_json: dict) -> tuple[list, int | None]:
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    manager = LabelManager(dataset_json["labels"], dataset_json.get("regions_class_order"))
    targets = manager.foreground_regions if manager.has_regions else manager.foreground_labels
    return [t if isinstance(t, tuple) else int(t) for t in targets], manager.ignore_label


def evaluate(ref_dir: str, pred_dir: str, dataset_json: dict) -> dict:
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder, label_or_region_to_key
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    targets, ignore = targets_and_ignore(dataset_json)
    result = compute_metrics_on_folder(
        ref_dir, pred_dir, None, SimpleITKIO(), dataset_json["file_ending"], targets, ignore, num_processes=1
    )
    result["mean"] = {label_or_region_to_key(k): v for k, v in result["mean"].items()}
    for case in result["metric_per_case"]:
        case["metrics"] = {label_or_region_to_key(k): v for k, v in case["metrics"].items()}
    return result


def postprocess(ref_dir: str, pred_dir: str, dataset_json: dict) -> dict:
    from nnunetv2.evaluation.evaluate_predictions import load_summary_json
    from nnunetv2.postprocessing.remove_connected_components import determine_postprocessing

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "predictions"
        shutil.copytree(pred_dir, folder)
        _, kwargs = determine_postprocessing(
            str(folder), ref_dir, {"image_reader_writer": "SimpleITKIO"}, dataset_json, 1, True
        )
        before = load_summary_json(str(folder / "summary.json"))["foreground_mean"]["Dice"]
        after = load_summary_json(str(folder / "postprocessed" / "summary.json"))["foreground_mean"]["Dice"]
    labels = []
    for step in kwargs:
        value = step["labels_or_regions"]
        labels.append([int(v) for v in value] if isinstance(value, list | tuple) else [int(value)])
    return {"labels": labels, "before": before, "after": after}


def main() -> None:
    mode, ref_dir, pred_dir, dataset_json_file = sys.argv[1:5]
    dataset_json = json.loads(Path(dataset_json_file).read_text())
    result = {"evaluate": evaluate, "postprocess": postprocess}[mode](ref_dir, pred_dir, dataset_json)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
