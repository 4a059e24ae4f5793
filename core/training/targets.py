"""Training targets for region-based datasets (METHOD.md 1.2, 5.5 step 15).

A region is a set of labels trained as one sigmoid channel ("whole tumour" = labels 1, 2 and 3), so the
label map becomes one boolean channel per region; with an ignore label, a last channel marks the
voxels the loss must skip.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def region_targets(
    seg: torch.Tensor, regions: Sequence[Sequence[int]], ignore_label: int | None
) -> torch.Tensor:
    """(B, 1, *S) label map → (B, R [+1], *S) bool region channels (+ the ignore mask)."""
    channels = [torch.isin(seg[:, 0], torch.as_tensor(region, device=seg.device)) for region in regions]
    if ignore_label is not None:
        channels.append(seg[:, 0] == ignore_label)
    return torch.stack(channels, dim=1)
