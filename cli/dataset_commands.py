"""Dataset commands: `sample`, `verify` and `plan`."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from cli.progress import ProgressBars
from core.parallel import default_workers
from core.pipeline import PlanOptions, plan_and_preprocess, plan_from_files
from core.planning import PRESETS as PLANNER_PRESETS
from core.plans import Plans
from core.synthetic import PRESETS as SAMPLE_PRESETS
from core.synthetic import generate_dataset
from core.verification import verify_dataset


def register(commands: argparse._SubParsersAction) -> None:
    sample = commands.add_parser(
        "sample",
        help="write a generated sample dataset in the nnU-Net v2 raw format",
        description="Write a small generated dataset (dataset.json, imagesTr/, labelsTr/).",
    )
    sample.add_argument("out_dir", type=Path, help="folder to write the dataset into")
    sample.add_argument("--kind", choices=sorted(SAMPLE_PRESETS), default="ct", help="default: ct")
    sample.add_argument("--cases", type=int, help="number of cases (default: the kind's own)")
    sample.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    sample.add_argument("--no-progress", action="store_true", help="log lines instead of a progress bar")
    sample.set_defaults(handler=run_sample)

    verify = commands.add_parser(
        "verify",
        help="check a raw dataset and list every problem",
        description="Check an nnU-Net v2 raw dataset folder; exit 0 when clean, 1 listing every problem.",
    )
    verify.add_argument("raw_dir", type=Path, help="raw dataset folder (holds dataset.json)")
    add_workers_and_progress(verify)
    verify.add_argument("--json", action="store_true", help="print the problems as JSON")
    verify.set_defaults(handler=run_verify)

    plan = commands.add_parser(
        "plan",
        help="fingerprint, plan and preprocess a raw dataset",
        description=(
            "Verify a raw dataset, extract its fingerprint, plan every configuration and preprocess. "
            "With --fingerprint and --dataset-json, plan from those files without reading images."
        ),
    )
    plan.add_argument("raw_dir", type=Path, nargs="?", help="raw dataset folder (holds dataset.json)")
    plan.add_argument("-o", "--out", dest="out_dir", type=Path, required=True, help="output folder")
    plan.add_argument(
        "--gpu-memory-gb",
        type=float,
        help="GPU memory the plans target, in GB (default: the preset's own, 8 for 'default')",
    )
    plan.add_argument(
        "--preset",
        choices=sorted(PLANNER_PRESETS),
        default="default",
        help="planner: plain U-Net ('default') or nnU-Net v2's residual-encoder presets",
    )
    plan.add_argument("--plan-only", action="store_true", help="write the plans, skip preprocessing")
    plan.add_argument(
        "-c", "--configurations", nargs="+", metavar="NAME", help="preprocess only these (default: all)"
    )
    plan.add_argument("--fingerprint", type=Path, help="plan from this dataset_fingerprint.json")
    plan.add_argument("--dataset-json", type=Path, help="dataset.json to plan with --fingerprint")
    add_workers_and_progress(plan)
    plan.set_defaults(handler=run_plan)


def add_workers_and_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-j",
        "--workers",
        type=int,
        default=default_workers(),
        help=f"worker processes (default: {default_workers()}, the number of cores up to 8)",
    )
    parser.add_argument("--no-progress", action="store_true", help="log lines instead of progress bars")


def run_sample(arguments: argparse.Namespace) -> int:
    spec = SAMPLE_PRESETS[arguments.kind]
    if arguments.cases is not None:
        spec = replace(spec, num_cases=arguments.cases)
    progress = ProgressBars(enabled=not arguments.no_progress)
    generate_dataset(arguments.out_dir, spec, seed=arguments.seed, progress=progress)
    progress.close()
    print(f"wrote {spec.num_cases} {arguments.kind} cases to {arguments.out_dir}")
    return 0


def run_verify(arguments: argparse.Namespace) -> int:
    progress = ProgressBars(enabled=not arguments.no_progress)
    problems = verify_dataset(arguments.raw_dir, arguments.workers, progress)
    progress.close()
    if arguments.json:
        print(json.dumps([problem.to_json() for problem in problems], indent=2))
    elif problems:
        print(f"{arguments.raw_dir}: {len(problems)} problem(s)")
        for problem in problems:
            print(f"  - {problem}")
    else:
        print(f"{arguments.raw_dir}: no problems found")
    return 1 if problems else 0


def run_plan(arguments: argparse.Namespace) -> int:
    options = PlanOptions(
        gpu_memory_gb=arguments.gpu_memory_gb,
        preset=arguments.preset,
        configurations=tuple(arguments.configurations) if arguments.configurations else None,
        is_plan_only=arguments.plan_only,
        workers=arguments.workers,
    )
    from_files = arguments.fingerprint is not None or arguments.dataset_json is not None
    if from_files == (arguments.raw_dir is not None):
        print(
            "error: give either RAW_DIR, or --fingerprint FINGERPRINT.json with --dataset-json DATASET.json",
            file=sys.stderr,
        )
        return 2
    if from_files:
        if arguments.fingerprint is None or arguments.dataset_json is None:
            print("error: --fingerprint and --dataset-json go together", file=sys.stderr)
            return 2
        plans = plan_from_files(arguments.fingerprint, arguments.dataset_json, arguments.out_dir, options)
    else:
        progress = ProgressBars(enabled=not arguments.no_progress)
        plans = plan_and_preprocess(arguments.raw_dir, arguments.out_dir, options, progress)
        progress.close()
    print_plans_summary(plans, arguments.out_dir)
    return 0


def print_plans_summary(plans: Plans, out_dir: Path) -> None:
    print(f"plans written to {out_dir / 'plans.json'} ({plans.plans_name})")
    for name, configuration in plans.configurations.items():
        architecture = configuration.architecture
        print(
            f"  {name:<20} patch {list(configuration.patch_size)} batch {configuration.batch_size} "
            f"spacing {[round(s, 3) for s in configuration.spacing]} "
            f"stages {architecture.n_stages}"
        )
