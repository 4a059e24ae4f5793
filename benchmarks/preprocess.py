"""Preprocessing throughput: nnsvc against nnU-Net v2 on the same CT-like dataset, same run, same plans.

What: wall-clock seconds per case of a whole preprocessing run (worker start-up included, as a user
waits for it) of `core.preprocessing.preprocess` and of nnU-Net v2's `DefaultPreprocessor.run`, with
the same number of worker processes; the peak resident memory of the largest single process (parent or
worker; `getrusage` ru_maxrss of the run's own process and of its waited-for children); and how far
our arrays are from nnU-Net's (largest absolute data difference, label voxels that differ).

Data: `core.synthetic`'s CT preset (default 20 cases of about 40 × 160 × 160 voxels at 3 × 0.75 × 0.75
mm, spacing jittered per case so that every case is resampled), planned by our planner; nnU-Net reads
the same plans file. Why: preprocessing runs once per dataset and configuration, but also inside
every prediction (METHOD.md 10.3); resampling there dominates, and the target is at least 3× faster.

Usage, from the repository root:
  python -m benchmarks.preprocess [--cases 20] [--workers 2] [--repeats 3] [--keep DIR]
The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.machine import machine_card
from core.dataset import load_dataset_json
from core.fingerprint import extract_fingerprint
from core.planning import plan_experiment
from core.plans import Plans, load_plans, save_plans
from core.preprocessed import list_cases, load_case
from core.preprocessing import preprocess
from core.synthetic import PRESETS, generate_dataset
from tests.reference import run_reference


def peak_rss_mb() -> float:
    """Largest resident set of this process or any child it waited for, in MiB (Linux: KiB units)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def _run_ours(raw: str, plans_path: str, configuration: str, out: str, workers: int, queue) -> None:
    """Child process body, so that its memory peak is this run's alone."""
    plans = load_plans(Path(plans_path))
    start = time.perf_counter()
    summary = preprocess(Path(raw), plans, configuration, Path(out), workers=workers)
    seconds = time.perf_counter() - start
    queue.put(
        {
            "seconds": seconds,
            "cases": len(summary.processed),
            "peak_rss_mb": peak_rss_mb(),
            "case_seconds": list(summary.seconds_per_case),
        }
    )


def run_ours(raw: Path, plans_path: Path, configuration: str, out: Path, workers: int) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(
        target=_run_ours, args=(str(raw), str(plans_path), configuration, str(out), workers, queue)
    )
    process.start()
    result = queue.get()
    process.join()
    return result


def compare(ours: Path, reference: Path) -> dict:
    worst, mismatches, voxels = 0.0, 0, 0
    for identifier in list_cases(ours):
        data, seg, _ = load_case(ours, identifier)
        reference_data = np.load(reference / f"{identifier}.npy")
        reference_seg = np.load(reference / f"{identifier}_seg.npy")
        if data.shape != reference_data.shape:
            raise RuntimeError(f"{identifier}: shape {data.shape} vs nnU-Net {reference_data.shape}")
        worst = max(worst, float(np.abs(data - reference_data).max()))
        mismatches += int((seg != reference_seg).sum())
        voxels += int(reference_seg.size)
    return {"max_abs_data_diff": worst, "seg_mismatch_voxels": mismatches, "seg_voxels": voxels}


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20, help="number of generated cases (20)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes, both tools (2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per tool (3)")
    parser.add_argument("--configuration", default="3d_fullres", help="plans configuration (3d_fullres)")
    parser.add_argument("--keep", type=Path, help="keep data and outputs in this folder")
    args = parser.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="nnsvc_bench_preprocess_"))
    card = machine_card()
    print(f"machine: {card}")
    raw = root / "raw"
    if not (raw / "dataset.json").exists():
        generate_dataset(raw, replace(PRESETS["ct"], num_cases=args.cases))
    plans_path = root / "plans.json"
    plans: Plans = plan_experiment(
        extract_fingerprint(raw, args.workers), load_dataset_json(raw / "dataset.json")
    )
    save_plans(plans, plans_path)
    identifier = plans.configuration(args.configuration).data_identifier

    ours_runs, reference_runs = [], []
    for repeat in range(args.repeats):
        shutil.rmtree(root / "ours", ignore_errors=True)
        ours_runs.append(run_ours(raw, plans_path, args.configuration, root / "ours", args.workers))
        shutil.rmtree(root / "reference", ignore_errors=True)
        reference_runs.append(
            run_reference(
                "preprocess_reference.py",
                "preprocess",
                str(raw),
                str(plans_path),
                args.configuration,
                str(root / "reference"),
                str(args.workers),
            )
        )
        print(
            f"run {repeat + 1}: nnsvc {ours_runs[-1]['seconds']:.2f} s, "
            f"nnU-Net {reference_runs[-1]['seconds']:.2f} s for {args.cases} cases"
        )
    agreement = compare(root / "ours" / identifier, root / "reference")
    ours_per_case = [run["seconds"] / args.cases for run in ours_runs]
    reference_per_case = [run["seconds"] / args.cases for run in reference_runs]
    case_seconds = [s for run in ours_runs for s in run["case_seconds"]]
    result = {
        "benchmark": "preprocess",
        "configuration": args.configuration,
        "cases": args.cases,
        "workers": args.workers,
        "repeats": args.repeats,
        "machine": card,
        "nnsvc_seconds_per_case": spread(ours_per_case),
        "nnunet_seconds_per_case": spread(reference_per_case),
        "speedup": statistics.median(reference_per_case) / statistics.median(ours_per_case),
        "nnsvc_worker_seconds_per_case": spread(case_seconds),
        "nnsvc_peak_rss_mb": max(run["peak_rss_mb"] for run in ours_runs),
        "nnunet_peak_rss_mb": max(run["peak_rss_mb"] for run in reference_runs),
        "memory_measure": "ru_maxrss, largest single process of the run (parent or worker)",
        **agreement,
    }
    print(
        f"nnsvc {result['nnsvc_seconds_per_case']['median']:.3f} s/case, nnU-Net "
        f"{result['nnunet_seconds_per_case']['median']:.3f} s/case: {result['speedup']:.2f}x; "
        f"max |data diff| {agreement['max_abs_data_diff']:.2e}, "
        f"{agreement['seg_mismatch_voxels']} label voxels differ"
    )
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
