"""Reference: nnU-Net v2's training loss and pseudo-Dice counts. Usage: loss_reference.py CASES_NPZ.

CASES_NPZ holds, per scenario NAME, arrays `NAME/logits_K` and `NAME/target_K` (one pair per deep
supervision output, K = 0 highest resolution) and `NAME/settings` = [has_regions, batch_dice,
ignore_label or -1]. Builds the loss as `nnUNetTrainer._build_loss` does (DC_and_CE_loss or
DC_and_BCE_loss, MemoryEfficientSoftDiceLoss, smooth 1e-5, DeepSupervisionWrapper with its weights)
and runs `nnUNetTrainer.validation_step` unbound on a stand-in whose network returns the given logits.
Prints {NAME: {"loss": float, "tp": [...], "fp": [...], "fn": [...]}} as one JSON line.
Runs only in the reference environment.
"""

import json
import sys
from types import SimpleNamespace

import numpy as np
import torch


def reference_for(arrays: dict[str, np.ndarray], name: str) -> dict:
    from nnunetv2.training.loss.compound_losses import DC_and_BCE_loss, DC_and_CE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    has_regions, batch_dice, ignore = (int(v) for v in arrays[f"{name}/settings"])
    ignore_label = None if ignore < 0 else ignore
    count = sum(1 for key in arrays if key.startswith(f"{name}/logits_"))
    logits = [torch.from_numpy(arrays[f"{name}/logits_{k}"]) for k in range(count)]
    targets = [torch.from_numpy(arrays[f"{name}/target_{k}"]) for k in range(count)]
    dice_kwargs = {"batch_dice": bool(batch_dice), "smooth": 1e-5, "ddp": False}
    if has_regions:
        loss = DC_and_BCE_loss(
            {},
            {**dice_kwargs, "do_bg": True},
            use_ignore_label=ignore_label is not None,
            dice_class=MemoryEfficientSoftDiceLoss,
        )
    else:
        loss = DC_and_CE_loss(
            {**dice_kwargs, "do_bg": False},
            {},
            weight_ce=1,
            weight_dice=1,
            ignore_label=ignore_label,
            dice_class=MemoryEfficientSoftDiceLoss,
        )
    # The weights as `_build_loss` makes them (not DDP): 1 / 2**i, last 0, normalised.
    weights = np.array([1 / (2**i) for i in range(count)])
    weights[-1] = 0
    wrapped = DeepSupervisionWrapper(loss, weights / weights.sum())
    trainer = SimpleNamespace(
        device=torch.device("cpu"),
        network=lambda data: [x.clone() for x in logits],
        loss=wrapped,
        enable_deep_supervision=True,
        label_manager=SimpleNamespace(
            has_regions=bool(has_regions),
            has_ignore_label=ignore_label is not None,
            ignore_label=ignore_label,
        ),
    )
    batch = {"data": torch.zeros(1), "target": [t.clone() for t in targets]}
    result = nnUNetTrainer.validation_step(trainer, batch)
    return {
        "loss": float(result["loss"]),
        **{key: result[f"{key}_hard"].tolist() for key in ("tp", "fp", "fn")},
    }


def main() -> None:
    with np.load(sys.argv[1]) as stored:
        arrays = {key: stored[key] for key in stored.files}
    names = sorted({key.split("/")[0] for key in arrays})
    print(json.dumps({name: reference_for(arrays, name) for name in names}))


if __name__ == "__main__":
    main()
