"""Reference: nnU-Net v2's experiment planner on given fingerprints. Usage: plan_experiment.py JOBS.

JOBS is a JSON file `{"jobs": [{"name", "fingerprint", "dataset_json", "planner",
"gpu_memory_target_in_gb"}]}` whose `fingerprint` and `dataset_json` are paths to the files the test
wrote. Each job gets its own DatasetNNN_Job folder; the planner runs without image files (the reader
is fixed with `overwrite_image_reader_writer` and one placeholder case), since planning reads only
the fingerprint and dataset.json. Prints `{"results": {name: plans}}` as its last line. Runs only in
the reference environment; one process plans every job, so nnU-Net is imported once.
"""

import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

PLANNER_MODULES = {
    "ExperimentPlanner": ("nnunetv2.experiment_planning.experiment_planners.default_experiment_planner"),
    "nnUNetPlannerResEncM": (
        "nnunetv2.experiment_planning.experiment_planners.residual_unets.residual_encoder_unet_planners"
    ),
}
PLANNER_MODULES["nnUNetPlannerResEncL"] = PLANNER_MODULES["nnUNetPlannerResEncM"]
PLANNER_MODULES["nnUNetPlannerResEncXL"] = PLANNER_MODULES["nnUNetPlannerResEncM"]


def lay_out(root: Path, index: int, job: dict) -> str:
    name = f"Dataset{index + 1:03d}_Job"
    raw = root / "raw" / name
    raw.mkdir(parents=True)
    dataset_json = json.loads(Path(job["dataset_json"]).read_text())
    dataset_json["overwrite_image_reader_writer"] = "SimpleITKIO"
    ending = dataset_json["file_ending"]
    dataset_json["dataset"] = {
        "case": {"images": [f"imagesTr/case_0000{ending}"], "label": f"labelsTr/case{ending}"}
    }
    (raw / "dataset.json").write_text(json.dumps(dataset_json))
    preprocessed = root / "preprocessed" / name
    preprocessed.mkdir(parents=True)
    shutil.copy(job["fingerprint"], preprocessed / "dataset_fingerprint.json")
    return name


def main() -> None:
    jobs = json.loads(Path(sys.argv[1]).read_text())["jobs"]
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        # nnU-Net reads these at import, so they must be set before the first nnunetv2 import.
        os.environ["nnUNet_raw"] = str(root / "raw")
        os.environ["nnUNet_preprocessed"] = str(root / "preprocessed")
        os.environ["nnUNet_results"] = str(root / "results")
        import importlib

        for index, job in enumerate(jobs):
            dataset_name = lay_out(root, index, job)
            module = importlib.import_module(PLANNER_MODULES[job["planner"]])
            kwargs = {}
            if job.get("gpu_memory_target_in_gb") is not None:
                kwargs["gpu_memory_target_in_gb"] = job["gpu_memory_target_in_gb"]
            # The planner prints its configurations; keep stdout for the one JSON line.
            with contextlib.redirect_stdout(io.StringIO()):
                planner = getattr(module, job["planner"])(dataset_name, **kwargs)
                planner.plan_experiment()
            plans_file = root / "preprocessed" / dataset_name / f"{planner.plans_identifier}.json"
            results[job["name"]] = json.loads(plans_file.read_text())
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
