"""From a raw dataset to plans and preprocessed data: verify → fingerprint → plan → preprocess.

The front door for `nnsvc plan` and for the service's planning job. Nothing is written before the
dataset has passed every check and the requested configurations are known to exist, so a refused run
leaves the output folder as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.dataset import DatasetError, DatasetSpec, load_dataset_json
from core.files import write_json_atomically
from core.fingerprint import Fingerprint, extract_fingerprint, load_fingerprint, save_fingerprint
from core.parallel import ProgressCallback, default_workers, no_progress
from core.planning import plan_experiment
from core.plans import Plans, save_plans
from core.preprocessing import preprocess
from core.verification import verify_dataset

DATASET_JSON = "dataset.json"
FINGERPRINT_JSON = "dataset_fingerprint.json"
PLANS_JSON = "plans.json"


@dataclass(frozen=True)
class PlanOptions:
    """What a person may choose; everything else the method decides."""

    gpu_memory_gb: float | None = None
    preset: str = "default"
    configurations: tuple[str, ...] | None = None
    is_plan_only: bool = False
    workers: int = default_workers()


def plan_from_fingerprint(
    fingerprint: Fingerprint, spec: DatasetSpec, dataset_name: str, out_dir: Path, options: PlanOptions
) -> Plans:
    """Plan without reading any image and write dataset.json, the fingerprint and plans.json."""
    plans = plan_experiment(
        fingerprint,
        spec,
        gpu_memory_gb=options.gpu_memory_gb,
        preset=options.preset,
        dataset_name=dataset_name,
    )
    check_requested_configurations(plans, options.configurations)
    out_dir = Path(out_dir)
    write_json_atomically(out_dir / DATASET_JSON, spec.raw)
    save_fingerprint(fingerprint, out_dir / FINGERPRINT_JSON)
    save_plans(plans, out_dir / PLANS_JSON)
    return plans


def plan_from_files(
    fingerprint_path: Path, dataset_json_path: Path, out_dir: Path, options: PlanOptions
) -> Plans:
    """Re-plan from someone's `dataset_fingerprint.json` and `dataset.json`, e.g. for another GPU."""
    spec = load_dataset_json(dataset_json_path)
    try:
        fingerprint = load_fingerprint(fingerprint_path)
    except FileNotFoundError:
        raise DatasetError([f"{fingerprint_path}: fingerprint file not found"]) from None
    except (ValueError, KeyError, TypeError) as error:
        raise DatasetError([f"{fingerprint_path}: not a dataset fingerprint ({error!r})"]) from None
    name = str(spec.raw.get("name") or Path(dataset_json_path).parent.name)
    return plan_from_fingerprint(fingerprint, spec, name, out_dir, options)


def plan_and_preprocess(
    raw_dir: Path, out_dir: Path, options: PlanOptions, progress: ProgressCallback = no_progress
) -> Plans:
    """The whole planning step for a raw dataset folder; raises DatasetError listing every problem."""
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    problems = verify_dataset(raw_dir, options.workers, progress)
    if problems:
        raise DatasetError([str(problem) for problem in problems])
    spec = load_dataset_json(raw_dir / DATASET_JSON)
    fingerprint = extract_fingerprint(raw_dir, options.workers, progress)
    plans = plan_from_fingerprint(fingerprint, spec, raw_dir.resolve().name, out_dir, options)
    if options.is_plan_only:
        return plans
    for configuration in configurations_to_preprocess(plans, options.configurations):
        preprocess(raw_dir, plans, configuration, out_dir, options.workers, progress)
    return plans


def check_requested_configurations(plans: Plans, requested: tuple[str, ...] | None) -> None:
    unknown = [name for name in requested or () if name not in plans.configurations]
    if unknown:
        raise DatasetError(
            [
                f"configuration {name!r} was not planned for this dataset; planned: "
                f"{', '.join(plans.configurations)}"
                for name in unknown
            ]
        )


def configurations_to_preprocess(plans: Plans, requested: tuple[str, ...] | None) -> list[str]:
    """One configuration per distinct data folder: a cascade reuses its full-resolution data."""
    names = list(requested) if requested else list(plans.configurations)
    chosen: dict[str, str] = {}
    for name in names:
        chosen.setdefault(plans.configuration(name).data_identifier, name)
    return list(chosen.values())
