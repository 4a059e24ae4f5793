"""How the network runs at prediction: mixed precision, memory layout, float32 logits out.

On the CPU, oneDNN's bfloat16 convolutions on channels-last tensors are the fast path (on this
project's CPU a forward pass of the default 3d_fullres network takes about 2.5x less time than in
float32 with the standard layout). Torch's instance norm reshapes its input into a batch norm, which
copies a channels-last tensor to the standard layout and back at every norm and costs more than the
convolutions gain; group norm with one group per channel computes exactly instance norm's statistics
(mean and biased variance per sample and channel, then the per-channel affine) and keeps the layout, so
on the CPU the network's instance norms are computed that way. On CUDA the network runs as nnU-Net v2
runs it (float16 autocast, standard layout). Whatever the precision inside, the logits come back as
float32 in the standard layout, so that mirrored predictions are summed and weighted without rounding
to 8 or 11 bits on every addition.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.instancenorm import _InstanceNorm

from core.precision import autocast_dtype

CHANNELS_LAST = {4: torch.channels_last, 5: torch.channels_last_3d}


class InstanceNormByGroups(nn.Module):
    """An instance norm without running statistics, computed as group norm with one group per
    channel: the same numbers, in the input's memory layout. Shares the norm's parameters, so the
    network's state-dict names and loading are unchanged."""

    def __init__(self, norm: _InstanceNorm) -> None:
        super().__init__()
        self.num_channels, self.eps = norm.num_features, norm.eps
        self.weight, self.bias = norm.weight, norm.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, self.num_channels, self.weight, self.bias, self.eps)


def compute_instance_norms_by_groups(network: nn.Module) -> nn.Module:
    """Replace, in place, every instance norm without running statistics (nnU-Net's default norm)
    by `InstanceNormByGroups`; a norm registered under two parents gets one replacement."""
    replacements: dict[int, InstanceNormByGroups] = {}
    for parent in list(network.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, _InstanceNorm) and not child.track_running_stats:
                if id(child) not in replacements:
                    replacements[id(child)] = InstanceNormByGroups(child)
                setattr(parent, name, replacements[id(child)])
    return network


class NetworkRunner:
    """The network as the sliding window calls it: (B, C, *patch) → float32 (B, K, *patch)."""

    def __init__(self, network: nn.Module, device: torch.device, precision: str = "auto") -> None:
        self.device = device
        self.autocast = autocast_dtype(device, precision)
        self.memory_format = torch.contiguous_format
        network.to(device).eval()
        if device.type == "cpu":
            compute_instance_norms_by_groups(network)
            conv_dims = {m.weight.ndim for m in network.modules() if isinstance(m, nn.modules.conv._ConvNd)}
            if len(conv_dims) == 1 and conv_dims <= CHANNELS_LAST.keys():
                self.memory_format = CHANNELS_LAST[conv_dims.pop()]
                network.to(memory_format=self.memory_format)
        self.network = network

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device, memory_format=self.memory_format)
        with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
            logits = self.network(batch)
        return logits.to(torch.float32, memory_format=torch.contiguous_format)
