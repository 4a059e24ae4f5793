"""Which mixed-precision type a network's forward pass runs in, for training and prediction alike.

"auto" is float16 autocast on CUDA, as nnU-Net v2, and bfloat16 autocast on CPUs that compute it
natively (AVX512-BF16, AMX: oneDNN's bfloat16 convolutions run about twice as fast as float32 there);
elsewhere plain float32. nnU-Net v2 never autocasts on the CPU (METHOD.md 5.1).
"""

from __future__ import annotations

from typing import Literal

import torch

PrecisionChoice = Literal["auto", "fp32", "bf16", "fp16"]
PRECISION_CHOICES: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")


def has_native_bf16() -> bool:
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast type of the forward pass on `device`, or None for plain float32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16" or device.type == "cuda":
        return torch.float16
    return torch.bfloat16 if device.type == "cpu" and has_native_bf16() else None
