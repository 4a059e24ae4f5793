"""The hardware card every benchmark prints, so that a figure can be read against its machine."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np
import torch

from core.precision import has_native_bf16


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_card(device: str = "cpu") -> dict:
    card = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        # "auto" predicts in bfloat16 only with these instructions; the speed-ups depend on it
        "cpu_bf16": has_native_bf16(),
        "device": device,
    }
    if device.startswith("cuda"):
        card["gpu"] = torch.cuda.get_device_name(0)
        card["cuda"] = torch.version.cuda
    return card
