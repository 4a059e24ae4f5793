"""Reference: nnU-Net v2's planning and preprocessing of a raw dataset folder, as files we can compare.

Usage:
  preprocess_reference.py plan RAW_DIR PLANS_OUT WORKERS
  preprocess_reference.py preprocess RAW_DIR PLANS_JSON CONFIGURATION OUT_DIR WORKERS

`plan` runs nnU-Net's fingerprint extraction and default planner and writes the plans JSON.
`preprocess` runs `DefaultPreprocessor.run` (timed, same worker count as asked) and converts its output
to plain files in OUT_DIR: `CASE.npy` (data), `CASE_seg.npy`, `CASE.json` (the geometry properties)
and `CASE_locations.npz` (one array per class-location key, keys written as in our format:
"1" or "-1,0,1,2"). The last stdout line is JSON. Runs only in the reference environment.
"""

import json
import os
import pickle
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

DATASET = "Dataset999_Reference"


def use_scratch(root: Path, raw_dir: Path) -> None:
    """Point nnU-Net's folders at `root` (before nnunetv2 is imported) and link the raw dataset in."""
    os.environ["nnUNet_raw"] = str(root / "raw")
    os.environ["nnUNet_preprocessed"] = str(root / "preprocessed")
    os.environ["nnUNet_results"] = str(root / "results")
    (root / "raw").mkdir()
    (root / "preprocessed" / DATASET).mkdir(parents=True)
    (root / "raw" / DATASET).symlink_to(raw_dir)


def plan(raw_dir: Path, plans_out: Path, workers: int) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        use_scratch(Path(scratch), raw_dir)
        from nnunetv2.experiment_planning.plan_and_preprocess_api import (
            extract_fingerprints,
            plan_experiments,
        )

        extract_fingerprints([999], num_processes=workers, verbose=False, show_progress_bar=False)
        plan_experiments([999])
        shutil.copy(Path(scratch) / "preprocessed" / DATASET / "nnUNetPlans.json", plans_out)
    return {"plans": str(plans_out)}


def key_name(key: object) -> str:
    """Our text form of a class key: "2", "-1,0,1,2", and "2," for a one-label region."""
    if isinstance(key, tuple | list):
        return ",".join(str(int(v)) for v in key) + ("," if len(key) == 1 else "")
    return str(int(key))


def export_case(source: Path, identifier: str, out_dir: Path) -> None:
    import blosc2
    import numpy as np

    data = blosc2.open(str(source / f"{identifier}.b2nd"), mode="r")[:]
    seg = blosc2.open(str(source / f"{identifier}_seg.b2nd"), mode="r")[:]
    np.save(out_dir / f"{identifier}.npy", data)
    np.save(out_dir / f"{identifier}_seg.npy", seg)
    with open(source / f"{identifier}.pkl", "rb") as stream:
        properties = pickle.load(stream)
    locations = properties.get("class_locations", {})
    arrays = {key_name(k): np.asarray(v, dtype=np.int64).reshape(-1, 4) for k, v in locations.items()}
    np.savez(out_dir / f"{identifier}_locations.npz", **arrays)
    summary = {
        "spacing": [float(v) for v in properties["spacing"]],
        "shape_before_cropping": [int(v) for v in properties["shape_before_cropping"]],
        "bbox_used_for_cropping": [[int(a), int(b)] for a, b in properties["bbox_used_for_cropping"]],
        "shape_after_cropping_and_before_resampling": [
            int(v) for v in properties["shape_after_cropping_and_before_resampling"]
        ],
        "class_location_keys": list(arrays),
    }
    (out_dir / f"{identifier}.json").write_text(json.dumps(summary))


def preprocess(raw_dir: Path, plans_json: Path, configuration: str, out_dir: Path, workers: int) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        use_scratch(Path(scratch), raw_dir)
        target = Path(scratch) / "preprocessed" / DATASET
        plans = json.loads(plans_json.read_text())
        plans["dataset_name"] = DATASET
        (target / "nnUNetPlans.json").write_text(json.dumps(plans))
        shutil.copy(raw_dir / "dataset.json", target / "dataset.json")
        from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
        from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

        preprocessor = DefaultPreprocessor(verbose=False)
        preprocessor.show_progress_bar = False
        start = time.perf_counter()
        preprocessor.run(DATASET, configuration, "nnUNetPlans", workers)
        seconds = time.perf_counter() - start
        identifier_folder = PlansManager(plans).get_configuration(configuration).data_identifier
        source = target / identifier_folder
        out_dir.mkdir(parents=True, exist_ok=True)
        identifiers = sorted(p.name[: -len(".pkl")] for p in source.glob("*.pkl"))
        for identifier in identifiers:
            export_case(source, identifier, out_dir)
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "cases": len(identifiers), "peak_rss_mb": max(children, own) / 1024}


def main() -> None:
    command, args = sys.argv[1], sys.argv[2:]
    if command == "plan":
        result = plan(Path(args[0]).resolve(), Path(args[1]).resolve(), int(args[2]))
    elif command == "preprocess":
        raw_dir, plans_json, configuration, out_dir, workers = args
        result = preprocess(
            Path(raw_dir).resolve(),
            Path(plans_json).resolve(),
            configuration,
            Path(out_dir).resolve(),
            int(workers),
        )
    else:
        raise SystemExit(f"unknown command {command!r}; use plan or preprocess")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
