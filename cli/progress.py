"""The CLI's `progress` callback: one progress bar per stage, or log lines with `--no-progress`."""

from __future__ import annotations

import sys

from tqdm import tqdm


class ProgressBars:
    """Draws a bar per stage on stderr; a new stage name closes the previous bar."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.stage: str | None = None
        self.bar: tqdm | None = None

    def __call__(self, fraction: float, stage: str, message: str = "", **metrics: float) -> None:
        if not self.enabled:
            if fraction >= 1.0 or stage != self.stage:
                print(f"{stage}: {fraction:.0%} {message}", file=sys.stderr)
            self.stage = stage
            return
        if self.bar is None or stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=100, desc=f"{stage:>13}", unit="%", file=sys.stderr, leave=True)
        bar = self.bar
        bar.n = round(100 * fraction)
        details = " ".join(f"{k}={v:.3g}" for k, v in metrics.items())
        bar.set_postfix_str(f"{message} {details}".strip(), refresh=False)
        bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.stage = None
