"""The CLI's `progress` callback: one progress bar per stage, or log lines with `--no-progress`."""

from __future__ import annotations

import math
import sys

from tqdm import tqdm

BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}"
# Metrics the message already says in words ("epoch 3/10 iteration 5/250").
SHOWN_IN_MESSAGE = {"epoch", "iteration"}


def format_metrics(metrics: dict[str, float]) -> str:
    parts = []
    for name, value in metrics.items():
        if name in SHOWN_IN_MESSAGE or (isinstance(value, float) and math.isnan(value)):
            continue
        if name.endswith("_s"):
            minutes, seconds = divmod(int(value), 60)
            parts.append(f"{name.removesuffix('_s')} {minutes // 60}:{minutes % 60:02d}:{seconds:02d}")
        else:
            parts.append(f"{name} {value:.4g}")
    return " ".join(parts)


class ProgressBars:
    """Draws a bar per stage on stderr; a new stage name closes the previous bar."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.stage: str | None = None
        self.bar: tqdm | None = None

    def __call__(self, fraction: float, stage: str, message: str = "", **metrics: float) -> None:
        details = f"{message} {format_metrics(metrics)}".strip()
        if not self.enabled:
            if fraction >= 1.0 or stage != self.stage:
                print(f"{stage}: {fraction:.0%} {details}", file=sys.stderr)
            self.stage = stage
            return
        if self.bar is None or stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=100, desc=f"{stage:>12}", bar_format=BAR_FORMAT, file=sys.stderr)
        bar = self.bar
        bar.n = round(100 * fraction)
        bar.set_postfix_str(details, refresh=False)
        bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.stage = None
