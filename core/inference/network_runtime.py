"""How the network runs at prediction: mixed precision, memory layout, float32 logits out.

On CPUs with native bfloat16 (see core.precision), oneDNN's bfloat16 convolutions on channels-last
tensors are the fast path (on an AVX512-BF16 CPU a forward pass of the default 3d_fullres network takes
about 2.5x less time than float32 in the standard layout). Torch's instance norm reshapes its input
into a batch norm, which copies a channels-last tensor to the standard layout and back at every norm
and costs more than the convolutions gain; group norm with one group per channel computes instance
norm's statistics (mean and biased variance per sample and channel, then the per-channel affine) and
keeps the layout, so bfloat16 passes compute the network's instance norms that way.

Float32 passes keep the standard layout and torch's own instance norm, the operations nnU-Net v2 runs:
torch's channels-last norm kernels add up a feature map's values one after another in float32, which on
a 48 x 160 x 192 map leaves the normalised values off by about 1e-3 (the standard layout's kernels:
about 2e-6), so a channels-last float32 network's logits were off by 2e-3 to 4e-3 and disagreed
with nnU-Net's probabilities by more than 1e-3. That error is below bfloat16's own resolution (about
4e-3 of each value), so bfloat16 keeps the fast layout. On CUDA the network runs as nnU-Net v2 runs it
(float16 autocast, standard layout). Whatever the precision inside, the logits come back as float32 in
the standard layout, so that mirrored predictions are summed and weighted without rounding to 8 or 11
bits on every addition.
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
        if device.type == "cpu" and self.autocast == torch.bfloat16:
            conv_dims = {m.weight.ndim for m in network.modules() if isinstance(m, nn.modules.conv._ConvNd)}
            if len(conv_dims) == 1 and conv_dims <= CHANNELS_LAST.keys():
                compute_instance_norms_by_groups(network)
                self.memory_format = CHANNELS_LAST[conv_dims.pop()]
                network.to(memory_format=self.memory_format)
        self.network = network

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device, memory_format=self.memory_format)
        with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
            logits = self.network(batch)
        return logits.to(torch.float32, memory_format=torch.contiguous_format)
