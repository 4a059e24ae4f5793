"""Network forward passes by precision, memory layout, instance norm, cuDNN autotuning and batch size.

What: the full default 3d_fullres network that our planner makes for `core.synthetic`'s CT preset
(He-initialised weights, deep supervision off), fed random windows of the planned patch. For each
variant: the median milliseconds per window over --repeats timed passes after warm-up, and the
relative error ‖logits − reference‖ / ‖reference‖ against float32 in the standard layout (on CUDA with
TF32 off). Then the whole sliding window with mirroring over a (1, --volume) volume for the variant
that prediction runs now and the fastest one: seconds and peak device memory.

Variants: float32 in the standard layout (nnU-Net v2's operations) and channels-last with
`ChannelsLastInstanceNorm` (`ours`); the device's autocast type (float16 on CUDA, bfloat16 on CPUs with
native bfloat16) in the standard layout and channels-last with torch's instance norm (`torch`), group
norm per channel (`groups`) or ours; on CUDA each with cudnn.benchmark off and on; the fastest with
--batches windows per pass. Why: the sliding window spends nearly all its time
in these passes, and these are the choices `core.inference.network_runtime` makes.

Usage: python -m benchmarks.network_forward [--device cpu|cuda] [--batches 1 2 4] [--repeats N]
                                            [--volume Z Y X] [--malloc-defaults]
The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from benchmarks.machine import machine_card
from core.dataset import load_dataset_json
from core.inference.network_runtime import (
    CHANNELS_LAST,
    ChannelsLastInstanceNorm,
    InstanceNormByGroups,
    channels_last_norm,
    replace_instance_norms,
)
from core.inference.sliding_window import SlidingWindowSettings, sliding_window_logits
from core.network import build_network
from core.pipeline import PlanOptions, plan_and_preprocess
from core.plans import ConfigurationPlan, load_plans
from core.precision import autocast_dtype
from core.process_memory import keep_freed_memory
from core.synthetic import PRESETS, generate_dataset

CONFIGURATION = "3d_fullres"
NORMS: dict[str, type[nn.Module] | None] = {
    "torch": None,
    "groups": InstanceNormByGroups,
    "ours": ChannelsLastInstanceNorm,
}


@dataclass(frozen=True)
class Variant:
    autocast: torch.dtype | None
    channels_last: bool = False
    norm: str = "torch"
    cudnn_benchmark: bool = False
    batch: int = 1

    @property
    def name(self) -> str:
        precision = str(self.autocast).removeprefix("torch.") if self.autocast else "float32"
        layout = f"channels_last/{self.norm}" if self.channels_last else "standard"
        tuned = " cudnn.benchmark" if self.cudnn_benchmark else ""
        return f"{precision} {layout}{tuned} batch {self.batch}"


def planned_configuration(work: Path) -> tuple[ConfigurationPlan, int]:
    """The planner's 3d_fullres configuration for the CT preset, and its number of classes."""
    generate_dataset(work / "raw", replace(PRESETS["ct"], num_cases=5), seed=11)
    options = PlanOptions(workers=1, configurations=(CONFIGURATION,), is_plan_only=True)
    plan_and_preprocess(work / "raw", work / "pre", options)
    plans = load_plans(work / "pre" / "plans.json")
    classes = len(load_dataset_json(work / "pre" / "dataset.json").labels)
    return plans.configurations[CONFIGURATION], classes


def runner(
    network: nn.Module, variant: Variant, device: torch.device
) -> Callable[[torch.Tensor], torch.Tensor]:
    """`network` copied and set up as `variant` says: (B, C, *patch) → float32 logits."""
    network = copy.deepcopy(network).to(device).eval()
    memory_format = torch.contiguous_format
    if variant.channels_last:
        memory_format = CHANNELS_LAST[5]
        replacement = NORMS[variant.norm]
        if replacement is not None:
            replace_instance_norms(network, replacement)
        network.to(memory_format=memory_format)

    @torch.inference_mode()
    def run(batch: torch.Tensor) -> torch.Tensor:
        torch.backends.cudnn.benchmark = variant.cudnn_benchmark
        batch = batch.to(device, memory_format=memory_format)
        with torch.autocast(device.type, dtype=variant.autocast, enabled=variant.autocast is not None):
            logits = network(batch)
        return logits.to(torch.float32, memory_format=torch.contiguous_format)

    return run


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_variant(
    run: Callable[[torch.Tensor], torch.Tensor],
    windows: list[torch.Tensor],
    device: torch.device,
    repeats: int,
) -> float:
    """Median milliseconds per window, after three warm-up passes."""
    for batch in windows[:3]:
        run(batch)
    synchronize(device)
    times = []
    for index in range(repeats):
        batch = windows[index % len(windows)]
        start = time.perf_counter()
        run(batch)
        synchronize(device)
        times.append((time.perf_counter() - start) * 1000 / batch.shape[0])
    return statistics.median(times)


def relative_error(logits: torch.Tensor, reference: torch.Tensor) -> float:
    return float((logits.double() - reference.double()).norm() / reference.double().norm())


def reference_logits(network: nn.Module, batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        return runner(network, Variant(None), device)(batch).cpu()
    finally:
        torch.backends.cudnn.allow_tf32 = tf32


def sliding_window_run(
    network: nn.Module,
    classes: int,
    variant: Variant,
    volume: torch.Tensor,
    patch: tuple[int, ...],
    device: torch.device,
) -> dict:
    run = runner(network, variant, device)
    settings = SlidingWindowSettings(patch, mirror_axes=(0, 1, 2), windows_per_batch=variant.batch)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with torch.inference_mode():
        sliding_window_logits(run, volume, classes, settings, device)
    synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    return {"variant": variant.name, "seconds": round(seconds, 2), "peak_device_mb": peak and round(peak)}


def variants(device: torch.device) -> list[Variant]:
    """float32 as nnU-Net v2 runs it and channels-last with our norm, then every layout and norm in
    the device's autocast type (none on CPUs without bfloat16), each with and without autotuning."""
    autocast = autocast_dtype(device, "auto")
    tunings = (False, True) if device.type == "cuda" else (False,)
    plain = [(None, False, "torch"), (None, True, "ours")]
    mixed = [(autocast, False, "torch")] + [(autocast, True, norm) for norm in NORMS] if autocast else []
    return [Variant(dtype, cl, norm, tuned) for dtype, cl, norm in plain + mixed for tuned in tunings]


def current_variant(device: torch.device) -> Variant:
    """How NetworkRunner runs "auto" on `device`: its norm choice, without cuDNN's autotuning."""
    autocast = autocast_dtype(device, "auto")
    norm = channels_last_norm(device, autocast, "auto")
    name = next(key for key, replacement in NORMS.items() if replacement is norm)
    return Variant(autocast, norm is not None, name)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.network_forward",
        description=__doc__.split("\nUsage")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4], help="windows per pass")
    parser.add_argument("--repeats", type=int, default=10, help="timed passes per variant")
    parser.add_argument("--volume", type=int, nargs=3, default=(96, 320, 384), help="sliding-window volume")
    parser.add_argument(
        "--malloc-defaults",
        action="store_true",
        help="keep glibc's defaults, which unmap every freed activation, instead of keeping freed "
        "memory for reuse as prediction does (core.process_memory)",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    keeps_freed_memory = not args.malloc_defaults and keep_freed_memory()
    print(json.dumps({**machine_card(args.device), "keeps_freed_memory": keeps_freed_memory}), flush=True)
    with tempfile.TemporaryDirectory() as work:
        configuration, classes = planned_configuration(Path(work))
    torch.manual_seed(0)
    network = build_network(configuration, 1, classes, deep_supervision=False)
    patch = tuple(configuration.patch_size)
    windows = [torch.randn(max(args.batches), 1, *patch) for _ in range(3)]
    reference = reference_logits(network, windows[0][:1], device)
    rows, timed = [], {}
    for variant in variants(device):
        run = runner(network, variant, device)
        error = relative_error(run(windows[0][:1]).cpu(), reference)
        timed[variant] = time_variant(run, [w[:1] for w in windows], device, args.repeats)
        rows.append(
            {"variant": variant.name, "ms_per_window": round(timed[variant], 2), "error": f"{error:.1e}"}
        )
        print(json.dumps(rows[-1]), flush=True)
    fastest = min(timed, key=timed.__getitem__)
    for batch in args.batches[1:]:
        variant = replace(fastest, batch=batch)
        run = runner(network, variant, device)
        timed[variant] = time_variant(run, [w[:batch] for w in windows], device, args.repeats)
        rows.append({"variant": variant.name, "ms_per_window": round(timed[variant], 2)})
        print(json.dumps(rows[-1]), flush=True)
    best = min(timed, key=timed.__getitem__)
    volume = torch.randn(1, *args.volume)
    sliding = [
        sliding_window_run(network, classes, v, volume, patch, device)
        for v in (current_variant(device), best)
    ]
    for row in sliding:
        print(json.dumps(row), flush=True)
    print(
        json.dumps(
            {"benchmark": "network_forward", "patch": patch, "forward": rows, "sliding_window": sliding}
        )
    )


if __name__ == "__main__":
    main()
