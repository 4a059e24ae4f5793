"""Which nnU-Net v2 trainer classes an imported model may come from (nnunetv2 2.8.1, METHOD.md 5.11).

nnU-Net v2 builds a trained model's network through the trainer class named in its checkpoint, so a
trainer that overrides `build_network_architecture` can give a different network than the plans
describe. Accepted are `nnUNetTrainer` and the shipped variants that change only how training runs
(epochs, loss, optimizer, learning rate, augmentation, patch sampling, deep supervision during
training): their networks are exactly the plans' networks. Mirroring variants are accepted too: the
axes that inference may mirror are stored in each checkpoint and followed.

Refused: `nnUNetTrainerBN` (batch norm in place of the plans' instance norm), the Primus trainers
(a transformer, not a U-Net), the benchmarking trainers (they write no usable checkpoint) and every
class not listed here, such as custom trainers found through `nnUNet_extTrainer`, whose code we cannot
see. A state-dict check after loading guards the accepted ones as well.
"""

from __future__ import annotations

_EPOCHS = (1, 5, 10, 20, 50, 100, 250, 500, 750, 2000, 4000, 8000)

ACCEPTED_TRAINERS: frozenset[str] = frozenset(
    {
        "nnUNetTrainer",
        # training length (variants/training_length)
        *(f"nnUNetTrainer_{n}epoch" if n == 1 else f"nnUNetTrainer_{n}epochs" for n in _EPOCHS),
        *(f"nnUNetTrainer_{n}epochs_NoMirroring" for n in (250, 2000, 4000, 8000)),
        # loss (variants/loss)
        "nnUNetTrainerCELoss",
        "nnUNetTrainerCELoss_5epochs",
        "nnUNetTrainerDiceLoss",
        "nnUNetTrainerDiceCELoss_noSmooth",
        "nnUNetTrainerTopk10Loss",
        "nnUNetTrainerTopk10LossLS01",
        "nnUNetTrainerDiceTopK10Loss",
        # optimizer (variants/optimizer)
        "nnUNetTrainerAdam",
        "nnUNetTrainerAdam1en3",
        "nnUNetTrainerAdam3en4",
        "nnUNetTrainerVanillaAdam",
        "nnUNetTrainerVanillaAdam1en3",
        "nnUNetTrainerVanillaAdam3en4",
        "nnUNetTrainerAdan",
        "nnUNetTrainerAdan1en3",
        "nnUNetTrainerAdan3en4",
        "nnUNetTrainerAdan1en1",
        "nnUNetTrainerAdanCosAnneal",
        # learning-rate schedule (variants/lr_schedule)
        "nnUNetTrainerCosAnneal",
        "nnUNetTrainer_warmup",
        # data augmentation and mirroring (variants/data_augmentation, competitions)
        "nnUNetTrainerDA5",
        "nnUNetTrainerDA5ord0",
        "nnUNetTrainerDA5Segord0",
        "nnUNetTrainerDA5_10epochs",
        "nnUNetTrainerNoDA",
        "nnUNetTrainer_DASegOrd0",
        "nnUNetTrainer_DASegOrd0_NoMirroring",
        "nnUNetTrainer_noDummy2DDA",
        "nnUNetTrainerNoMirroring",
        "nnUNetTrainer_onlyMirror01",
        "nnUNetTrainer_onlyMirror01_1500ep",
        "nnUNetTrainer_onlyMirror01_DASegOrd0",
        "nnUNetTrainer_onlyMirror01_DA5",
        # patch sampling (variants/sampling)
        "nnUNetTrainer_probabilisticOversampling",
        "nnUNetTrainer_probabilisticOversampling_033",
        "nnUNetTrainer_probabilisticOversampling_010",
        # batch size (primus/primus_trainers.py) and deep supervision off during training
        "nnUNet_Trainer_BS8",
        "nnUNetTrainerNoDeepSupervision",
    }
)


def _refusal_reason(trainer_name: str) -> str:
    if trainer_name == "nnUNetTrainerBN":
        return "it replaces the plans' instance norm by batch norm"
    if "Primus" in trainer_name:
        return "it trains a Primus transformer, not a U-Net"
    if trainer_name.startswith("nnUNetTrainerBenchmark"):
        return "it is a benchmark and writes no usable checkpoint"
    return (
        "it is not one of nnU-Net v2's shipped trainers whose network is the plans' network "
        "(nnUNetTrainer and its variants that change only training: epochs, loss, optimizer, "
        "learning rate, augmentation, sampling)"
    )


def trainer_problem(trainer_name: str) -> str | None:
    """Why a trainer class cannot be imported, or None when it can."""
    if trainer_name in ACCEPTED_TRAINERS:
        return None
    return f"trainer class {trainer_name!r} is not supported: {_refusal_reason(trainer_name)}"
