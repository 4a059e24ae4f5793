"""Training throughput: nnsvc against nnU-Net v2's trainer, same data, same plan, same run.

What: training iterations per second with the whole data pipeline — patch sampling from the
preprocessed cases, the method's augmentation, deep-supervision targets, forward, loss, backward and
the SGD step — of nnsvc's `Trainer.train_step` fed by its `BatchStream`, and of nnU-Net v2's
`nnUNetTrainer.train_step` fed by its `dataloader_train` (batchgenerators workers, as many as nnU-Net
picks for this machine). Each side runs in its own process: a few untimed warm-up iterations, then
`--iterations` timed ones (split over `--rounds` rounds in the order A B, B A, each side in a fresh
process, so that load from other processes on a shared machine falls on both alike), the device
synchronised before every clock read. Per iteration we time the seconds blocked waiting for the batch
(`next(stream)`) and the step, and report iterations/s as N / total time (what a run gets) and as
1 / median iteration, the spread, the data-wait fraction (seconds blocked in `next` / total; on a
GPU this is time the GPU idles for want of data — the target is under 5%), and the ratio nnsvc /
nnU-Net (target: at least 2×). On CPU (or with `--stages`) the nnsvc step is split further into
augmentation, target downsampling and the rest (network, loss, optimizer), timed inside the real
`train_step`. Peak memory is ru_maxrss of each side's training process (and, for nnU-Net, of its
largest augmentation worker).

Data: `core.synthetic`'s CT preset (`--cases`, default 10), planned and preprocessed by
`core.pipeline.plan_and_preprocess`; nnU-Net reads our plans.json (same patch size, batch size and
network) and splits_final.json (same fold-0 training cases) and preprocesses the same raw files with
its `DefaultPreprocessor`. On CPU the cases default to 20 × 80 × 80 voxels (patch 24 × 96 × 96,
five stages) because one step of the preset's full-size plan (patch 48 × 192 × 192, six stages)
takes one to two minutes on two cores; on CUDA the preset's own size is the default.

Ceiling: each side also times a few bare network steps (forward, backward, SGD on a random batch; no
data, no real loss). Both sides train the same network, so nnsvc cannot beat nnU-Net's seconds per
iteration divided by its own bare network step: `speedup_ceiling`. On a CPU, where the network's
compute dominates, that ceiling is close to 1; the 2× target is a GPU figure.

Why: nnU-Net v2 runs augmentation in CPU worker processes, and its users' commonest complaint is a
GPU starved by the CPU (METHOD.md 10.1). Ours runs batched on the training device. Other processes on
the machine distort timings: the 1-minute load average is printed at the start, before each side and
at the end.

Usage, from the repository root:
  python -m benchmarks.train [--device cpu|cuda] [--cases 10] [--shape 20x80x80] [--iterations 20]
      [--warmup 2] [--rounds 2] [--bare-repeats 2] [--workers 2] [--seed 0] [--stages] [--keep DIR]
The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from benchmarks.machine import machine_card
from core.dataset import parse_dataset_json
from core.pipeline import PlanOptions, plan_and_preprocess
from core.plans import load_plans
from core.preprocessed import list_cases
from core.synthetic import PRESETS, generate_dataset
from core.training.splits import SPLITS_FILE_NAME, load_or_create_splits
from tests.reference import run_reference

CONFIGURATION = "3d_fullres"
CPU_SHAPE = (20, 80, 80)
DEFAULTS = {"cpu": {"iterations": 20, "warmup": 2}, "cuda": {"iterations": 100, "warmup": 10}}
STAGES = ("augment_training_batch", "make_targets")  # names in core.training.trainer, timed in place


@dataclass(frozen=True)
class Timing:
    """How each side is timed."""

    device: str
    iterations: int
    warmup: int
    bare_repeats: int
    seed: int
    is_staged: bool
    precision: str


def load_average() -> float:
    return os.getloadavg()[0]


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def throughput(waits: list[float], steps: list[float]) -> dict:
    """Iterations/s and data wait from per-iteration seconds blocked on data and seconds in the step."""
    iterations = [w + s for w, s in zip(waits, steps, strict=True)]
    total = sum(iterations)
    return {
        "iterations_per_s": len(iterations) / total,
        "iterations_per_s_median": 1 / statistics.median(iterations),
        "seconds_per_iteration": spread(iterations),
        "data_wait_fraction": sum(waits) / total,
        "data_wait_seconds": spread(waits),
        "step_seconds": spread(steps),
    }


def prepare_data(root: Path, cases: int, shape: tuple[int, int, int], workers: int) -> Path:
    """Raw cases under root/raw, our plans and preprocessed data under root/preprocessed (kept if there)."""
    raw, preprocessed = root / "raw", root / "preprocessed"
    if not (raw / "dataset.json").exists():
        generate_dataset(raw, replace(PRESETS["ct"], num_cases=cases, shape=shape))
    if not (preprocessed / "plans.json").exists():
        plan_and_preprocess(raw, preprocessed, PlanOptions(workers=workers, configurations=(CONFIGURATION,)))
    plans = load_plans(preprocessed / "plans.json")
    identifiers = list_cases(preprocessed / plans.configuration(CONFIGURATION).data_identifier)
    load_or_create_splits(preprocessed / SPLITS_FILE_NAME, identifiers)  # shared with nnU-Net
    return preprocessed


def bare_network_seconds(network, optimizer, shape: tuple[int, ...], device, repeats: int) -> list[float]:
    """Seconds per forward + backward + SGD step on a fixed random batch (one untimed first): no data,
    no real loss. The reference script times nnU-Net's network the same way; the weights and optimizer
    state are put back afterwards."""
    import copy

    import torch

    saved = copy.deepcopy(network.state_dict()), copy.deepcopy(optimizer.state_dict())
    is_cuda = device.type == "cuda"
    image = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device)
    seconds = []
    for repeat in range(repeats + 1):
        if is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, enabled=is_cuda):
            outputs = network(image)
            outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
            loss = sum(output.float().mean() for output in outputs)
        loss.backward()
        optimizer.step()
        if is_cuda:
            torch.cuda.synchronize()
        if repeat:
            seconds.append(time.perf_counter() - start)
    optimizer.zero_grad(set_to_none=True)
    network.load_state_dict(saved[0])
    optimizer.load_state_dict(saved[1])
    return seconds


class StageClock:
    """Seconds spent per iteration in named functions of a module, timed inside the real caller by
    replacing the module's names with timed wrappers (the device is synchronised around each call)."""

    def __init__(self, module: object, names: tuple[str, ...], sync: Callable[[], None]) -> None:
        self.seconds = {name: 0.0 for name in names}
        for name in names:
            setattr(module, name, self._timed(name, getattr(module, name), sync))

    def _timed(self, name: str, function: Callable, sync: Callable[[], None]) -> Callable:
        def timed(*args, **kwargs):
            sync()
            start = time.perf_counter()
            result = function(*args, **kwargs)
            sync()
            self.seconds[name] += time.perf_counter() - start
            return result

        return timed

    def take(self) -> dict[str, float]:
        taken = dict(self.seconds)
        self.seconds = dict.fromkeys(self.seconds, 0.0)
        return taken


def _run_ours(preprocessed: str, timing: Timing, queue) -> None:
    """Child process body, so that its memory peak and thread settings are this run's alone."""
    import torch

    import core.training.trainer as trainer_module
    from core.training.data_loader import BatchStream
    from core.training.options import TrainingOptions

    folder = Path(preprocessed)
    plans = load_plans(folder / "plans.json")
    spec = parse_dataset_json(json.loads((folder / "dataset.json").read_text()))
    options = TrainingOptions(device=timing.device, seed=timing.seed, precision=timing.precision)
    is_cuda = timing.device == "cuda"

    def sync() -> None:
        if is_cuda:
            torch.cuda.synchronize()

    configuration = plans.configuration(CONFIGURATION)
    setup_start = time.perf_counter()
    parts = trainer_module.build_parts(folder, plans, spec, CONFIGURATION, 0, options)
    with tempfile.TemporaryDirectory() as fold_dir:
        trainer = trainer_module.Trainer(parts, options, Path(fold_dir), init_args={})
        trainer.network.train()
        bare_shape = (configuration.batch_size, parts.train_cases.num_channels, *configuration.patch_size)
        setup_seconds = time.perf_counter() - setup_start
        bare = bare_network_seconds(
            trainer.network, trainer.optimizer, bare_shape, parts.device, timing.bare_repeats
        )
        clock = StageClock(trainer_module, STAGES, sync) if timing.is_staged else None
        waits, steps, losses, stages = [], [], [], []
        with BatchStream(
            parts.train_cases, parts.train_sampling, timing.seed, 0, pin_memory=is_cuda
        ) as stream:
            for iteration in range(timing.warmup + timing.iterations):
                sync()
                start = time.perf_counter()
                batch = next(stream)
                loaded = time.perf_counter()
                losses.append(trainer.train_step(batch.image, batch.seg, batch.index))
                sync()
                end = time.perf_counter()
                taken = clock.take() if clock else {}
                if iteration >= timing.warmup:
                    waits.append(loaded - start)
                    steps.append(end - loaded)
                    stages.append(taken)
    queue.put(
        {
            "wait_seconds": waits,
            "step_seconds": steps,
            "stage_seconds": stages,
            "losses": losses,
            "bare_network_seconds": bare,
            "setup_seconds": setup_seconds,
            "patch_size": list(configuration.patch_size),
            "batch_size": configuration.batch_size,
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "autocast": str(trainer.autocast_dtype or "none"),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if is_cuda else None,
        }
    )


def run_ours(preprocessed: Path, timing: Timing) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_run_ours, args=(str(preprocessed), timing, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def stage_summary(stages: list[dict[str, float]], steps: list[float]) -> dict:
    """Per-iteration seconds of augmentation, targets and the rest of the step (network, loss, SGD)."""
    augmentation = [s["augment_training_batch"] for s in stages]
    targets = [s["make_targets"] for s in stages]
    rest = [step - a - t for step, a, t in zip(steps, augmentation, targets, strict=True)]
    total = sum(steps)
    return {
        "augmentation_seconds": spread(augmentation),
        "targets_seconds": spread(targets),
        "network_loss_optimizer_seconds": spread(rest),
        "augmentation_fraction_of_step": sum(augmentation) / total,
        "targets_fraction_of_step": sum(targets) / total,
    }


def split_iterations(iterations: int, rounds: int) -> list[int]:
    """Timed iterations per round, as even as possible; rounds without any are dropped."""
    counts = [iterations // rounds + (1 if r < iterations % rounds else 0) for r in range(rounds)]
    return [count for count in counts if count]


def merge_rounds(runs: list[dict]) -> dict:
    """One side's rounds as one run: per-iteration lists joined, the largest memory peaks, the first
    round's losses and settings."""
    merged = dict(runs[0])
    for key in ("wait_seconds", "step_seconds", "stage_seconds", "bare_network_seconds"):
        if key in merged:
            merged[key] = [value for run in runs for value in run[key]]
    for key in ("peak_rss_mb", "peak_rss_mb_main", "peak_rss_mb_workers", "peak_gpu_mb"):
        if merged.get(key) is not None:
            merged[key] = max(run[key] for run in runs)
    return merged


def parse_shape(text: str) -> tuple[int, int, int]:
    values = tuple(int(v) for v in text.lower().split("x"))
    if len(values) != 3 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"--shape wants Z x Y x X voxels such as 24x96x96, got {text!r}")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = parser.add_argument_group("data")
    data.add_argument("--cases", type=int, default=10, help="number of generated CT-like cases (10)")
    data.add_argument(
        "--shape",
        type=parse_shape,
        help=f"case size in voxels, ZxYxX (cpu: {'x'.join(map(str, CPU_SHAPE))}; cuda: the CT preset's "
        f"{'x'.join(map(str, PRESETS['ct'].shape))})",
    )
    data.add_argument("--workers", type=int, default=2, help="preprocessing processes, both tools (2)")
    data.add_argument("--keep", type=Path, help="keep data in this folder, and reuse what is already there")
    timing = parser.add_argument_group("timing")
    timing.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="training device (cpu)")
    timing.add_argument("--iterations", type=int, help="timed iterations per side (cpu 20, cuda 100)")
    timing.add_argument(
        "--warmup", type=int, help="untimed iterations first, per side and round (cpu 2, cuda 10)"
    )
    timing.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="split the timed iterations into rounds run in the order A B, B A, ..., each side in a fresh "
        "process, so that load from other processes falls on both sides alike (2)",
    )
    timing.add_argument(
        "--bare-repeats",
        type=int,
        default=2,
        help="bare network steps (random batch, no data pipeline) timed per side and round, after one "
        "untimed (2)",
    )
    timing.add_argument("--seed", type=int, default=0, help="nnsvc's sampling and augmentation seed (0)")
    timing.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="nnsvc's training precision (auto: float16 on CUDA, bfloat16 on CPUs that compute it natively; "
        "nnU-Net v2 trains in float32 on CPU and float16 on CUDA)",
    )
    timing.add_argument(
        "--stages",
        action="store_true",
        help="on cuda, also split nnsvc's step into augmentation / targets / rest (adds device syncs; "
        "always done on cpu, where it costs nothing)",
    )
    args = parser.parse_args()
    for name, value, minimum in (
        ("--cases", args.cases, 5),  # five folds
        ("--iterations", args.iterations, 1),
        ("--warmup", args.warmup, 0),
        ("--bare-repeats", args.bare_repeats, 1),
        ("--rounds", args.rounds, 1),
        ("--workers", args.workers, 1),
    ):
        if value is not None and value < minimum:
            parser.error(f"{name} must be at least {minimum}, got {value}")
    timing = Timing(
        device=args.device,
        iterations=args.iterations or DEFAULTS[args.device]["iterations"],
        warmup=DEFAULTS[args.device]["warmup"] if args.warmup is None else args.warmup,
        bare_repeats=args.bare_repeats,
        seed=args.seed,
        is_staged=args.stages or args.device == "cpu",
        precision=args.precision,
    )
    shape = args.shape or (CPU_SHAPE if args.device == "cpu" else PRESETS["ct"].shape)

    loads = {"start": load_average()}
    card = machine_card(args.device)
    print(f"machine: {card}; 1-min load average {loads['start']:.2f}")
    root = args.keep or Path(tempfile.mkdtemp(prefix="nnsvc_bench_train_"))
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    preprocessed = prepare_data(root, args.cases, shape, args.workers)
    nnunet_root = root / "nnunet"
    if not (nnunet_root / "preprocessed").exists():
        prepared = run_reference(
            "train_reference.py",
            "prepare",
            str(nnunet_root),
            str(root / "raw"),
            str(preprocessed),
            CONFIGURATION,
            str(args.workers),
        )
        print(f"nnU-Net preprocessing: {prepared['preprocess_seconds']:.1f} s")
    print(f"data ready after {time.perf_counter() - started:.1f} s")

    runs: dict[str, list[dict]] = {"nnsvc": [], "nnunet": []}
    sides = {
        "nnsvc": lambda count: run_ours(preprocessed, replace(timing, iterations=count)),
        "nnunet": lambda count: run_reference(
            "train_reference.py",
            "train",
            str(nnunet_root),
            CONFIGURATION,
            args.device,
            str(count),
            str(timing.warmup),
            str(timing.bare_repeats),
        ),
    }
    for round_index, count in enumerate(split_iterations(timing.iterations, args.rounds)):
        order = ("nnsvc", "nnunet") if round_index % 2 == 0 else ("nnunet", "nnsvc")
        for side in order:
            loads[f"round {round_index + 1} before {side}"] = load_average()
            runs[side].append(sides[side](count))
            summary = throughput(runs[side][-1]["wait_seconds"], runs[side][-1]["step_seconds"])
            print(
                f"round {round_index + 1}, {side}: {summary['iterations_per_s']:.4f} it/s over {count}, "
                f"data wait {100 * summary['data_wait_fraction']:.1f}%"
            )
    loads["end"] = load_average()
    ours, reference = merge_rounds(runs["nnsvc"]), merge_rounds(runs["nnunet"])
    ours_summary = throughput(ours["wait_seconds"], ours["step_seconds"])
    reference_summary = throughput(reference["wait_seconds"], reference["step_seconds"])
    if (ours["patch_size"], ours["batch_size"]) != (reference["patch_size"], reference["batch_size"]):
        raise RuntimeError(f"the two sides trained different plans: {ours} vs {reference}")

    result = {
        "benchmark": "train",
        "configuration": CONFIGURATION,
        "device": args.device,
        "cases": args.cases,
        "case_shape": list(shape),
        "patch_size": ours["patch_size"],
        "batch_size": ours["batch_size"],
        "iterations": timing.iterations,
        "rounds": args.rounds,
        "warmup_per_round": timing.warmup,
        "machine": card,
        "load_average_1min": loads,
        "nnsvc": {
            **ours_summary,
            **(stage_summary(ours["stage_seconds"], ours["step_seconds"]) if timing.is_staged else {}),
            "bare_network_seconds": spread(ours["bare_network_seconds"]),
            "first_last_loss": [ours["losses"][0], ours["losses"][-1]],
            "setup_seconds": ours["setup_seconds"],
            "torch": ours["torch"],
            "torch_threads": ours["torch_threads"],
            "autocast": ours["autocast"],
            "loader": "BatchStream: 1 background thread in the training process, 3 batches ahead",
            "peak_rss_mb": ours["peak_rss_mb"],
            "peak_gpu_mb": ours["peak_gpu_mb"],
        },
        "nnunet": {
            **reference_summary,
            "bare_network_seconds": spread(reference["bare_network_seconds"]),
            "first_last_loss": [reference["losses"][0], reference["losses"][-1]],
            "setup_seconds": reference["setup_seconds"],
            "torch": reference["torch"],
            "torch_threads": reference["torch_threads"],
            "da_processes_train": reference["da_processes_train"],
            "da_processes_val": reference["da_processes_val"],
            "peak_rss_mb": reference["peak_rss_mb_main"],
            "peak_rss_mb_largest_worker": reference["peak_rss_mb_workers"],
            "peak_gpu_mb": reference["peak_gpu_mb"],
        },
        "speedup": ours_summary["iterations_per_s"] / reference_summary["iterations_per_s"],
        "speedup_median": ours_summary["iterations_per_s_median"]
        / reference_summary["iterations_per_s_median"],
        "target_speedup": 2.0,
        "target_data_wait_fraction_gpu": 0.05,
        "speedup_ceiling": reference_summary["seconds_per_iteration"]["median"]
        / statistics.median(ours["bare_network_seconds"]),
        "bare_network_ratio": statistics.median(reference["bare_network_seconds"])
        / statistics.median(ours["bare_network_seconds"]),
        "memory_measure": "ru_maxrss of each side's training process (nnsvc: its loader thread included); "
        "nnU-Net's augmentation workers separately (largest one; they are forked, so their peak counts "
        "pages shared with the main process)",
    }
    print(
        f"nnsvc {result['nnsvc']['iterations_per_s']:.4f} it/s, nnU-Net "
        f"{result['nnunet']['iterations_per_s']:.4f} it/s: {result['speedup']:.2f}x (ceiling "
        f"{result['speedup_ceiling']:.2f}x); nnsvc waits for data "
        f"{100 * result['nnsvc']['data_wait_fraction']:.1f}% of the time; 1-min load average "
        + ", ".join(f"{k} {v:.2f}" for k, v in loads.items())
    )
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
