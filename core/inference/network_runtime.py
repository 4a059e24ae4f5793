"""How the network runs at prediction: mixed precision, memory layout, float32 logits out.

On the CPU, oneDNN's convolutions on channels-last tensors are the fast path: in bfloat16 on CPUs with
bfloat16 instructions (see core.precision; a forward pass of the default 3d_fullres network takes about
2.5x less time than float32 in the standard layout there), and in float32 too (about 1.2x less on an
AVX-512 Xeon). Torch's instance norm reshapes its input into a batch norm, which copies a channels-last
tensor to the standard layout and back at every norm and costs more than the convolutions gain, so the
network's instance norms are replaced, keeping their parameters:

- bfloat16: group norm with one group per channel, which computes instance norm's statistics and keeps
  the layout. Its channels-last kernel adds a feature map's values up one after another in float32,
  off by about 1e-3 of the normalised values on a 48 x 160 x 192 map: below bfloat16's own resolution
  (about 4e-3 of each value), so it costs nothing that bfloat16 keeps.
- float32 ("auto" on CPUs without bfloat16 instructions): `ChannelsLastInstanceNorm`, which takes the
  mean and then the variance of the centred values with torch's reductions (pairwise sums); the
  network's logits stay within about 4e-5 of float64's, where group norm's left them off by 2e-3 to
  4e-3, enough to move probabilities by 1e-3.
- float32 asked for by name ("fp32"): no replacement and the standard layout, i.e. nnU-Net v2's own
  operations, whose logits equal nnU-Net's bit for bit on the same torch build (the parity tests rely
  on it: nnU-Net's float16 accumulator turns any difference in the last bits into a rounding step of
  up to 1e-3 in probability).

On CUDA the network runs in float16 autocast and the standard layout, as nnU-Net v2 runs it, but
without turning cuDNN's autotuning on (see NetworkRunner). Whatever the precision inside, the logits
come back as float32 in the standard layout, so that mirrored predictions are summed and weighted
without rounding to 8 or 11 bits on every addition.
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


class ChannelsLastInstanceNorm(nn.Module):
    """An instance norm without running statistics for a channels-last float32 tensor, in its layout:
    viewed as (samples, voxels, channels), the mean per sample and channel, then the mean square of the
    centred values, then the affine on the centred values. Shares the norm's parameters."""

    def __init__(self, norm: _InstanceNorm) -> None:
        super().__init__()
        self.eps = norm.eps
        self.weight, self.bias = norm.weight, norm.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial_last = x.permute(0, *range(2, x.ndim), 1)  # a view, contiguous when x is channels-last
        rows = spatial_last.reshape(x.shape[0], -1, x.shape[1])
        centred = rows - rows.mean(1, keepdim=True)
        scale = torch.rsqrt(centred.square().mean(1, keepdim=True) + self.eps)
        if self.weight is not None:
            scale = scale * self.weight
        out = (
            centred.mul_(scale)
            if self.bias is None
            else torch.addcmul(self.bias, centred, scale, out=centred)
        )
        return out.view(spatial_last.shape).permute(0, x.ndim - 1, *range(1, x.ndim - 1))


def replace_instance_norms(network: nn.Module, replacement: type[nn.Module]) -> nn.Module:
    """Replace, in place, every instance norm without running statistics (nnU-Net's default norm) by
    `replacement(norm)`; a norm registered under two parents gets one replacement."""
    replacements: dict[int, nn.Module] = {}
    for parent in list(network.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, _InstanceNorm) and not child.track_running_stats:
                if id(child) not in replacements:
                    replacements[id(child)] = replacement(child)
                setattr(parent, name, replacements[id(child)])
    return network


def channels_last_norm(
    device: torch.device, autocast: torch.dtype | None, precision: str
) -> type[nn.Module] | None:
    """The instance norm replacement for a channels-last pass, or None to keep the standard layout."""
    if device.type != "cpu":
        return None
    if autocast == torch.bfloat16:
        return InstanceNormByGroups
    if autocast is None and precision == "auto":
        return ChannelsLastInstanceNorm
    return None


class NetworkRunner:
    """The network as the sliding window calls it: (B, C, *patch) → float32 (B, K, *patch).

    Prediction does not turn cuDNN's autotuning on, where nnU-Net v2 does: on an H200 it made no pass
    faster (`benchmarks.network_forward --device cuda`) and cost each process about a second on its
    first window, which doubled a small case's time. The flag is process-wide, so a process that
    trained on CUDA before (core.training.trainer turns it on) predicts with it on.
    """

    def __init__(self, network: nn.Module, device: torch.device, precision: str = "auto") -> None:
        self.device = device
        self.autocast = autocast_dtype(device, precision)
        self.memory_format = torch.contiguous_format
        network.to(device).eval()
        norm = channels_last_norm(device, self.autocast, precision)
        conv_dims = {m.weight.ndim for m in network.modules() if isinstance(m, nn.modules.conv._ConvNd)}
        if norm is not None and len(conv_dims) == 1 and conv_dims <= CHANNELS_LAST.keys():
            replace_instance_norms(network, norm)
            self.memory_format = CHANNELS_LAST[conv_dims.pop()]
            network.to(memory_format=self.memory_format)
        self.network = network

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device, memory_format=self.memory_format)
        with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
            logits = self.network(batch)
        return logits.to(torch.float32, memory_format=torch.contiguous_format)
