"""Reference: nnU-Net v2's fingerprint of a raw dataset folder. Usage: fingerprint.py RAW_DIR WORKERS.

Prints the fingerprint JSON as its last line. Runs only in the reference environment.
"""

import json
import os
import sys
import tempfile
from pathlib import Path


def main() -> None:
    raw_dir, workers = Path(sys.argv[1]).resolve(), int(sys.argv[2])
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        os.environ["nnUNet_raw"] = str(root / "raw")
        os.environ["nnUNet_preprocessed"] = str(root / "preprocessed")
        os.environ["nnUNet_results"] = str(root / "results")
        (root / "raw").mkdir()
        (root / "raw" / "Dataset999_Reference").symlink_to(raw_dir)
        from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import (
            DatasetFingerprintExtractor,
        )

        extractor = DatasetFingerprintExtractor("Dataset999_Reference", workers)
        extractor.show_progress_bar = False
        fingerprint = extractor.run()
    print(json.dumps(fingerprint, default=float))


if __name__ == "__main__":
    main()
