"""Per-epoch training records: the curves nnU-Net v2 logs, a text log and `progress.png`.

The record keys are nnU-Net v2's `LocalLogger` keys, so a checkpoint's `logging` entry means the
same in both tools and a resumed run continues its curves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

LOG_KEYS = (
    "mean_fg_dice",
    "ema_fg_dice",
    "dice_per_class_or_region",
    "train_losses",
    "val_losses",
    "lrs",
    "epoch_start_timestamps",
    "epoch_end_timestamps",
)


@dataclass
class EpochRecord:
    train_loss: float
    val_loss: float
    dice_per_class: list[float]
    mean_fg_dice: float
    ema_fg_dice: float
    learning_rate: float
    started_at: float
    ended_at: float


@dataclass
class TrainingLog:
    """The curves so far, one entry per finished epoch."""

    entries: dict[str, list] = field(default_factory=lambda: {key: [] for key in LOG_KEYS})

    @classmethod
    def from_checkpoint(cls, logging: dict[str, list]) -> TrainingLog:
        return cls({key: list(logging.get(key, [])) for key in LOG_KEYS})

    def append(self, record: EpochRecord) -> None:
        self.entries["mean_fg_dice"].append(record.mean_fg_dice)
        self.entries["ema_fg_dice"].append(record.ema_fg_dice)
        self.entries["dice_per_class_or_region"].append(list(record.dice_per_class))
        self.entries["train_losses"].append(record.train_loss)
        self.entries["val_losses"].append(record.val_loss)
        self.entries["lrs"].append(record.learning_rate)
        self.entries["epoch_start_timestamps"].append(record.started_at)
        self.entries["epoch_end_timestamps"].append(record.ended_at)

    def epoch_seconds(self) -> list[float]:
        return [
            end - start
            for start, end in zip(
                self.entries["epoch_start_timestamps"], self.entries["epoch_end_timestamps"], strict=True
            )
        ]


def describe_epoch(epoch: int, record: EpochRecord, is_new_best: bool) -> str:
    """The text log's lines for one epoch, with the same facts nnU-Net v2 prints."""
    dice = ", ".join("nan" if math.isnan(d) else f"{d:.4f}" for d in record.dice_per_class)
    lines = [
        f"{datetime.now():%Y-%m-%d %H:%M:%S}: epoch {epoch}",
        f"  learning rate {record.learning_rate:.6f}",
        f"  train loss {record.train_loss:.4f}  val loss {record.val_loss:.4f}",
        f"  pseudo dice [{dice}]  moving average {record.ema_fg_dice:.4f}",
        f"  epoch time {record.ended_at - record.started_at:.1f} s",
    ]
    if is_new_best:
        lines.append(f"  new best moving-average pseudo dice: {record.ema_fg_dice:.4f}")
    return "\n".join(lines) + "\n"


def plot_progress(log: TrainingLog, path: Path) -> None:
    """Losses and pseudo Dice, epoch duration, learning rate: three panels, rewritten each epoch."""
    entries = log.entries
    epochs = list(range(len(entries["train_losses"])))
    figure, (losses, durations, rates) = plt.subplots(3, 1, figsize=(12, 13))
    losses.plot(epochs, entries["train_losses"], color="b", label="train loss")
    losses.plot(epochs, entries["val_losses"], color="r", label="val loss")
    dice = losses.twinx()
    dice.plot(epochs, entries["mean_fg_dice"], color="g", linestyle="dotted", label="pseudo dice")
    dice.plot(epochs, entries["ema_fg_dice"], color="g", label="pseudo dice (moving average)")
    losses.set_xlabel("epoch")
    losses.set_ylabel("loss")
    dice.set_ylabel("pseudo dice")
    losses.legend(loc=(0, 1))
    dice.legend(loc=(0.2, 1))
    durations.plot(epochs, log.epoch_seconds(), color="b", label="epoch duration")
    durations.set_xlabel("epoch")
    durations.set_ylabel("time [s]")
    durations.legend(loc=(0, 1))
    rates.plot(epochs, entries["lrs"], color="b", label="learning rate")
    rates.set_xlabel("epoch")
    rates.set_ylabel("learning rate")
    rates.legend(loc=(0, 1))
    figure.tight_layout()
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.partial.png")
    figure.savefig(temporary)
    plt.close(figure)
    temporary.replace(path)
