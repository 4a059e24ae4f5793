"""Are bfloat16 convolutions on this CPU repeatable? The check behind training's float32 default.

What: for the 3D convolutions of a default 3d_fullres U-Net trained on 16 x 96 x 96 patches (batch 2),
the same weight gradient (autocast bfloat16, as training would compute it) is computed `--repeats`
times; printed per layer shape: how many repeats differ from the first, how many hold non-finite
values, and the largest error against the float32 result relative to that result's largest value
(bfloat16's rounding alone gives about 0.01). The forward pass in
prediction's form (bfloat16, channels_last_3d, no gradient) is repeated the same way.

Why: training runs under bfloat16 autocast turned NaN within ten epochs on this project's CPU (torch
2.13); this shows where (the bottleneck's small feature maps) and lets a new torch be checked before
training's default changes. No nnU-Net v2 baseline: nnU-Net v2 never autocasts on the CPU.

Usage: python -m benchmarks.bf16_gradients [--repeats 100]. The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F

from benchmarks.machine import machine_card

# (batch, channels in, depth, height, width), channels out: each encoder stage's second convolution
LAYERS = (
    ((2, 32, 16, 96, 96), 32),
    ((2, 64, 16, 48, 48), 64),
    ((2, 128, 8, 24, 24), 128),
    ((2, 256, 4, 12, 12), 256),
    ((2, 320, 2, 6, 6), 320),
    ((2, 320, 2, 3, 3), 320),
)


def repeatability(results: list[torch.Tensor], exact: torch.Tensor) -> dict:
    scale = float(exact.abs().max())
    finite = [bool(torch.isfinite(result).all()) for result in results]
    errors = [float((r - exact).abs().max()) / scale for r, ok in zip(results, finite, strict=True) if ok]
    return {
        "differ": sum(not torch.equal(result, results[0]) for result in results[1:]),
        "non_finite": finite.count(False),
        "largest_relative_error": round(max(errors, default=0.0), 4),
    }


def weight_gradients(
    shape: tuple[int, ...], channels_out: int, repeats: int, dtype: torch.dtype = torch.bfloat16
) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=generator)
    weight = (torch.randn(channels_out, shape[1], 3, 3, 3, generator=generator) * 0.02).requires_grad_()
    upstream = None
    gradients = []
    for _ in range(repeats):
        weight.grad = None
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            y = F.conv3d(x, weight, padding=1)
        upstream = torch.randn(y.shape, generator=generator) if upstream is None else upstream
        y.float().backward(upstream)
        gradients.append(weight.grad.clone())
    return gradients


@torch.no_grad()
def forward_outputs(
    shape: tuple[int, ...], channels_out: int, repeats: int, dtype: torch.dtype = torch.bfloat16
) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=generator).to(memory_format=torch.channels_last_3d)
    weight = (torch.randn(channels_out, shape[1], 3, 3, 3, generator=generator) * 0.02).to(
        memory_format=torch.channels_last_3d
    )
    outputs = []
    for _ in range(repeats):
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            outputs.append(F.conv3d(x, weight, padding=1).float())
    return outputs


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--repeats", type=int, default=100, help="computations per layer (default 100)")
    args = parser.parse_args()
    print(json.dumps(machine_card("cpu")))
    report = {}
    for shape, channels_out in LAYERS:
        name = "x".join(map(str, shape)) + f"->{channels_out}"
        report[name] = {
            "weight_gradient": repeatability(
                weight_gradients(shape, channels_out, args.repeats),
                weight_gradients(shape, channels_out, 1, torch.float32)[0],
            ),
            "forward": repeatability(
                forward_outputs(shape, channels_out, args.repeats),
                forward_outputs(shape, channels_out, 1, torch.float32)[0],
            ),
        }
        print(name, report[name], flush=True)
    print(json.dumps({"benchmark": "bf16_gradients", "repeats": args.repeats, "layers": report}))


if __name__ == "__main__":
    main()
