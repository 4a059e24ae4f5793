"""Training augmentation: a picture of what it does, and how long one batch takes.

What: (1) a PNG grid of patches from a generated case, before (the unaugmented centre crop) and after our
augmentation, middle slice along axis 0 with the labels overlaid; rows force one family of transforms
each, then a few rows use the method's own random draw, each captioned with what fired. (2) Seconds per
batch of `augment_training_batch`: mean (which sets throughput), median and spread over fresh draws with
the method's probabilities, and with every transform forced on (the worst case), on the chosen device,
synchronised before each clock read; and, in the same run, nnU-Net v2's batchgeneratorsv2 pipeline on the
same batch (one sample at a time, as its workers run it) in the reference environment, same thread count,
with the ratio of means.

Data: `core.synthetic`'s CT preset, enlarged where needed so that a case covers the initial patch,
z-scored, cropped around the middle to `initial_patch_size` (image padded with 0, labels with -1, as the
loader pads). Why: nnU-Net v2 users' commonest complaint is a GPU starved by CPU augmentation (METHOD.md
10.1); this is the figure that says whether ours keeps up, and the picture is how a person checks that
labels follow the image.

Usage, from the repository root:
  python -m benchmarks.augmentation_grid [--patch 40x160x160] [--batch 2] [--repeats 10] [--device auto]
      [--out PNG] [--no-baseline]
The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from benchmarks.machine import machine_card
from core.augmentation import (
    AugmentationDraw,
    AugmentationSettings,
    apply_augmentation,
    configure_augmentation,
    draw_augmentation,
)
from core.augmentation._rows import ChannelDraw
from core.augmentation.spatial import SpatialDraw
from core.synthetic import PRESETS, draw_case
from tests.reference import ReferenceUnavailable, run_reference

INTENSITY_FIELDS = ("noise", "blur", "brightness", "contrast", "low_resolution", "inverted_gamma", "gamma")
# Rows of the picture that force transforms on: (caption, spatial?, intensity fields, mirror?)
FORCED_ROWS = [
    ("rotation + scaling", True, (), False),
    ("blur + low resolution", False, ("blur", "low_resolution"), False),
    ("noise + brightness + contrast", False, ("noise", "brightness", "contrast"), False),
    ("gamma, inverted gamma", False, ("inverted_gamma", "gamma"), False),
    ("everything + mirroring", True, INTENSITY_FIELDS, True),
]
RANDOM_ROWS = 3
LABEL_COLOURS = {1: (230, 60, 60), 2: (250, 210, 40)}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patch", default="40x160x160", help="final patch, e.g. 40x160x160 or 128x128x128")
    parser.add_argument("--batch", type=int, default=2, help="samples per timed batch (default 2)")
    parser.add_argument("--channels", type=int, default=1, help="image channels (default 1)")
    parser.add_argument("--repeats", type=int, default=20, help="timed batches per figure (default 20)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for both pipelines (default 1, as nnU-Net's workers)",
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: auto")
    parser.add_argument("--seed", type=int, default=0, help="seed for the case and the draws (default 0)")
    parser.add_argument(
        "--out", type=Path, default=Path(tempfile.gettempdir()) / "nnsvc_augmentation_grid.png"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip nnU-Net v2's pipeline")
    return parser.parse_args()


def crop_with_padding(
    volume: np.ndarray, shape: tuple[int, ...], centre: np.ndarray, fill: float
) -> np.ndarray:
    """The box of `shape` centred at `centre`, padded with `fill` where it leaves the volume."""
    out = np.full(shape, fill, dtype=volume.dtype)
    lower = centre - np.array(shape) // 2
    source = tuple(
        slice(max(lo, 0), min(lo + s, n)) for lo, s, n in zip(lower, shape, volume.shape, strict=True)
    )
    target = tuple(slice(src.start - lo, src.stop - lo) for src, lo in zip(source, lower, strict=True))
    out[target] = volume[source]
    return out


def make_batch(
    settings: AugmentationSettings, batch: int, channels: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops around the middle of one generated case, jittered per sample, as the loader would cut them."""
    initial = settings.initial_patch_size
    base = PRESETS["ct"]
    shape = tuple(max(s, i) for s, i in zip(base.shape, initial, strict=True))
    rng = np.random.default_rng(seed)
    volumes, label, _ = draw_case(replace(base, shape=shape, channel_names={"0": "CT"}), rng)
    volume = volumes[0].astype(np.float32)
    volume = (volume - volume.mean()) / volume.std()
    images, segs = [], []
    for _ in range(batch):
        centre = np.array(volume.shape) // 2 + rng.integers(-8, 9, 3) * (np.array(volume.shape) > 8)
        crop = crop_with_padding(volume, initial, centre, 0.0)
        images.append(np.stack([crop] * channels))
        segs.append(crop_with_padding(label.astype(np.int8), initial, centre, -1)[None])
    return torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(segs))


def forced(
    draw: AugmentationDraw, is_spatial: bool, fields: tuple[str, ...], is_mirrored: bool
) -> AugmentationDraw:
    """The draw with exactly the named transforms on for every sample (their drawn parameters kept)."""
    spatial = draw.spatial
    ones = torch.ones_like(spatial.is_rotated)
    changes: dict[str, object] = {
        name: ChannelDraw(
            torch.full_like(getattr(draw, name).rows, name in fields), getattr(draw, name).values
        )
        for name in INTENSITY_FIELDS
    }
    if is_spatial:
        # 0.4 rad (23 degrees) about every axis is inside every configuration's range
        angles = torch.full_like(spatial.angles_rad, 0.4)
        changes["spatial"] = SpatialDraw(angles, torch.full_like(spatial.scales, 1.25), ones, ones)
    else:
        changes["spatial"] = SpatialDraw(
            torch.zeros_like(spatial.angles_rad), torch.ones_like(spatial.scales), ~ones, ~ones
        )
    changes["mirror"] = torch.full_like(draw.mirror, is_mirrored)
    return replace(draw, **changes)


def fired(draw: AugmentationDraw, sample: int) -> str:
    names = [n for n in ("rotated", "scaled") if bool(getattr(draw.spatial, f"is_{n}")[sample])]
    names += [n for n in INTENSITY_FIELDS if bool(getattr(draw, n).rows[sample].any())]
    axes = torch.nonzero(draw.mirror[sample]).flatten().tolist()
    names += [f"mirror {axes}"] if axes else []
    return ", ".join(names) or "nothing"


def panel(image: np.ndarray, seg: np.ndarray, window: tuple[float, float]) -> Image.Image:
    """A grey image of one slice with the foreground labels blended in colour."""
    grey = np.clip((image - window[0]) / (window[1] - window[0]), 0, 1)[..., None] * 255 * np.ones(3)
    for value, colour in LABEL_COLOURS.items():
        grey = np.where((seg == value)[..., None], 0.6 * grey + 0.4 * np.array(colour), grey)
    return Image.fromarray(grey.astype(np.uint8))


def write_grid(settings: AugmentationSettings, seed: int, out: Path) -> Path:
    rows = len(FORCED_ROWS) + RANDOM_ROWS
    image, seg = make_batch(settings, rows, 1, seed)
    generator = torch.Generator().manual_seed(seed)
    draws = [forced(draw_augmentation(settings, rows, 1, generator), *spec[1:]) for spec in FORCED_ROWS]
    random_draw = draw_augmentation(settings, rows, 1, generator)
    before_image, before_seg = apply_augmentation(image, seg, forced(random_draw, False, (), False), settings)
    captions, after = [], []
    for row in range(rows):
        draw = draws[row] if row < len(FORCED_ROWS) else random_draw
        out_image, out_seg = apply_augmentation(
            image[row : row + 1], seg[row : row + 1], _one(draw, row), settings
        )
        after.append((out_image[0, 0], out_seg[0, 0]))
        kind = FORCED_ROWS[row][0] if row < len(FORCED_ROWS) else "method's random draw"
        captions.append(f"{kind}: {fired(draw, row)}")
    middle = settings.patch_size[0] // 2 if len(settings.patch_size) == 3 else None
    values = before_image.numpy()
    body = values[values > values.min() + 0.1 * (values.max() - values.min())]  # window on the body, not air
    window = tuple(np.percentile(body, [1, 99]).tolist())

    def slice_of(tensor: torch.Tensor) -> np.ndarray:
        return (tensor[middle] if middle is not None else tensor).numpy()

    width, height = settings.patch_size[-1], settings.patch_size[-2]
    caption_height = 28
    canvas = Image.new("RGB", (2 * width + 12, rows * (height + caption_height + 6)), (255, 255, 255))
    pen = ImageDraw.Draw(canvas)
    for row in range(rows):
        top = row * (height + caption_height + 6)
        line_length = 2 * width // 6
        caption = captions[row][: 2 * line_length]
        pen.text((4, top + 2), caption[:line_length] + "\n" + caption[line_length:], fill=(0, 0, 0))
        before = panel(slice_of(before_image[row, 0]), slice_of(before_seg[row, 0]), window)
        canvas.paste(before, (4, top + caption_height))
        canvas.paste(
            panel(slice_of(after[row][0]), slice_of(after[row][1]), window), (width + 8, top + caption_height)
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out


def _one(draw: AugmentationDraw, sample: int) -> AugmentationDraw:
    """The draw of one sample, as a draw for a batch of one."""
    pick = slice(sample, sample + 1)
    fields = (draw.spatial.angles_rad, draw.spatial.scales, draw.spatial.is_rotated, draw.spatial.is_scaled)
    spatial = SpatialDraw(*(tensor[pick] for tensor in fields))
    changes: dict[str, object] = {
        name: ChannelDraw(getattr(draw, name).rows[pick], getattr(draw, name).values[pick])
        for name in INTENSITY_FIELDS
    }
    return replace(draw, spatial=spatial, mirror=draw.mirror[pick], **changes)


def time_batches(
    image: torch.Tensor, seg: torch.Tensor, settings: AugmentationSettings, draws: list[AugmentationDraw]
) -> list[float]:
    seconds = []
    for draw in draws:
        if image.device.type == "cuda":
            torch.cuda.synchronize(image.device)
        start = time.perf_counter()
        apply_augmentation(image, seg, draw, settings)
        if image.device.type == "cuda":
            torch.cuda.synchronize(image.device)
        seconds.append(time.perf_counter() - start)
    return seconds


def summary(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    return {
        "mean_s": round(statistics.fmean(seconds), 4),
        "median_s": round(statistics.median(seconds), 4),
        "min_s": round(ordered[0], 4),
        "max_s": round(ordered[-1], 4),
        "n": len(seconds),
    }


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # read by the reference process
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    patch = tuple(int(v) for v in args.patch.split("x"))
    settings = configure_augmentation(patch, [0, 1, 2])
    print(f"machine: {json.dumps(machine_card(str(device)))}")
    print(f"patch {patch}, initial patch {settings.initial_patch_size}, dummy 2D: {settings.is_dummy_2d}")
    png = write_grid(settings, args.seed, args.out)
    print(f"grid: {png}")

    image, seg = make_batch(settings, args.batch, args.channels, args.seed + 1)
    image, seg = image.to(device), seg.to(device)
    generator = torch.Generator().manual_seed(args.seed)
    warmup = [
        forced(
            draw_augmentation(settings, args.batch, args.channels, generator), True, INTENSITY_FIELDS, True
        )
    ]
    time_batches(image, seg, settings, warmup * 2)
    method = [draw_augmentation(settings, args.batch, args.channels, generator) for _ in range(args.repeats)]
    worst = [forced(d, True, INTENSITY_FIELDS, True) for d in method]
    result = {
        "png": str(png),
        "patch": list(patch),
        "initial_patch": list(settings.initial_patch_size),
        "batch": args.batch,
        "channels": args.channels,
        "device": str(device),
        "method_draws": summary(time_batches(image, seg, settings, method)),
        "all_transforms_on": summary(time_batches(image, seg, settings, worst)),
    }
    print(f"ours, method's draws: {result['method_draws']}")
    print(f"ours, every transform on: {result['all_transforms_on']}")
    if not args.no_baseline:
        try:
            result["nnunetv2"] = baseline(image.cpu(), seg.cpu(), patch, args.repeats)
            result["speedup_vs_nnunetv2"] = round(
                result["nnunetv2"]["mean_s"] / result["method_draws"]["mean_s"], 2
            )
            print(f"nnU-Net v2 (batchgeneratorsv2, CPU): {result['nnunetv2']}")
        except ReferenceUnavailable as error:
            print(f"baseline skipped: {error}")
    print(json.dumps(result))


def baseline(image: torch.Tensor, seg: torch.Tensor, patch: tuple[int, ...], repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "batch.npz"
        np.savez(path, image=image.numpy(), seg=seg.numpy())
        answer = run_reference(
            "augmentation_baseline.py",
            str(path),
            json.dumps(list(patch)),
            json.dumps([0, 1, 2]),
            str(repeats),
        )
    return {**summary(answer["seconds_per_batch"]), "threads": answer["threads"]}


if __name__ == "__main__":
    main()
