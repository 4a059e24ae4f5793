"""Which mixed-precision type a network's forward pass runs in, for training and prediction alike.

"auto" is float16 autocast on CUDA, as nnU-Net v2. On CPUs that compute bfloat16 natively
(AVX512-BF16, AMX: oneDNN's bfloat16 convolutions run about twice as fast as float32 there) prediction
autocasts to bfloat16. Other CPUs predict in float32 (in the channels-last layout, see
core.inference.network_runtime): oneDNN emulates bfloat16 on any AVX-512 CPU (its own "bf16 supported"
probe answers yes there), and on an AVX-512 Xeon without AVX512-BF16 the emulation made a forward pass
of the default 3d_fullres network 3.7 times slower than float32.

Training runs in float32 on every CPU: with torch 2.13's oneDNN the bfloat16 weight gradients of 3D
convolutions on small feature maps (a U-Net's bottleneck) are garbage: they change from call to call,
are off by up to 1e36 times the gradient's size and now and then not finite, which turned training runs
into NaN (`python -m benchmarks.bf16_gradients` measures it). Forward passes agree with float32 to
bfloat16's rounding and repeat exactly, so prediction keeps bfloat16. nnU-Net v2 never
autocasts on the CPU (METHOD.md 5.1).
"""

from __future__ import annotations

import torch

from core.errors import ProblemsError


def has_native_bf16() -> bool:
    """Whether the CPU has bfloat16 instructions (AVX512-BF16 or AMX), as torch's CPU probe reports."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return torch.backends.mkldnn.is_available() and any(
        getattr(torch.cpu, probe, lambda: False)() for probe in probes
    )


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast type of the forward pass on `device`, or None for plain float32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16" or device.type == "cuda":
        return torch.float16
    return torch.bfloat16 if device.type == "cpu" and has_native_bf16() else None


class PrecisionError(ProblemsError):
    """A precision this device cannot train in correctly."""


def training_autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast type of training's forward pass: as prediction's, except that the CPU trains in
    float32 ("auto") and refuses bfloat16, whose weight gradients are wrong there (see above)."""
    if device.type == "cpu" and precision == "bf16":
        raise PrecisionError(
            "bf16 training on the CPU is refused: this torch computes bfloat16 weight gradients of 3D "
            "convolutions wrongly on it (they change from call to call and can be NaN); "
            "use --precision auto or fp32"
        )
    if device.type == "cpu" and precision == "auto":
        return None
    return autocast_dtype(device, precision)
