"""A fold's checkpoint file names (nnU-Net v2's), apart from the torch code that reads and writes them
so that the CLI can offer them as choices without loading torch."""

LATEST = "checkpoint_latest.pth"
BEST = "checkpoint_best.pth"
FINAL = "checkpoint_final.pth"
