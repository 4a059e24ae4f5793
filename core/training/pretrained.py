"""Fine-tuning: start a fold from another model's weights when the architectures match.

Everything but the segmentation heads is loaded (the new dataset may have other labels); a checkpoint
whose layers differ in name or shape is refused with every differing layer named, instead of loading
half a network.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from core.training.checkpoints import CheckpointError, load_checkpoint

SEGMENTATION_HEAD_MARKER = ".seg_layers."


def load_pretrained_weights(network: nn.Module, checkpoint_path: Path) -> None:
    document = load_checkpoint(checkpoint_path)
    weights = document.get("network_weights", document)
    if not isinstance(weights, dict):
        raise CheckpointError(f"{checkpoint_path}: holds no network weights")
    own = {k: v for k, v in network.state_dict().items() if SEGMENTATION_HEAD_MARKER not in k}
    theirs = {k: v for k, v in weights.items() if SEGMENTATION_HEAD_MARKER not in k}
    problems = [f"missing in the checkpoint: {name}" for name in sorted(set(own) - set(theirs))]
    problems += [f"not in this network: {name}" for name in sorted(set(theirs) - set(own))]
    problems += [
        f"{name}: shape {tuple(theirs[name].shape)} in the checkpoint, {tuple(own[name].shape)} here"
        for name in sorted(set(own) & set(theirs))
        if tuple(theirs[name].shape) != tuple(own[name].shape)
    ]
    if problems:
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise CheckpointError(
            f"{Path(checkpoint_path).name}: architecture does not match this plan:\n  " + "\n  ".join(shown)
        )
    network.load_state_dict(theirs, strict=False)
