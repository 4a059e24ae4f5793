"""Reference: seconds per batch of nnU-Net v2's training transforms (batchgeneratorsv2, one sample at a time).

Usage: augmentation_baseline.py BATCH_NPZ PATCH_JSON LABELS_JSON REPEATS
BATCH_NPZ holds `image` (B, C, *initial) float32 and `seg` (B, 1, *initial) int8, cropped as our loader
crops. The transforms are built as `nnUNetTrainer.get_training_transforms` builds them (deep supervision
off), with the rotation and dummy-2D settings of `configure_rotation_dummyDA_mirroring_and_inital_patch_size`.
Prints {"seconds_per_batch": [...], "threads": n} as its last line. Runs only in the reference environment.
"""

import json
import sys
import time

import numpy as np
import torch


def main() -> None:
    batch_path, patch_json, labels_json, repeats = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    from nnunetv2.configuration import ANISO_THRESHOLD
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    patch = tuple(json.loads(patch_json))
    labels = json.loads(labels_json)
    if len(patch) == 2:
        is_dummy_2d = False
        limit = np.pi / 12 if max(patch) / min(patch) > 1.5 else np.pi
    else:
        is_dummy_2d = max(patch) / patch[0] > ANISO_THRESHOLD
        limit = np.pi if is_dummy_2d else np.pi / 6
    transforms = nnUNetTrainer.get_training_transforms(
        patch,
        (-limit, limit),
        None,
        tuple(range(len(patch))),
        is_dummy_2d,
        use_mask_for_norm=[False],
        is_cascaded=False,
        foreground_labels=[v for v in labels if v > 0],
        regions=None,
        ignore_label=None,
    )
    batch = np.load(batch_path)
    image, seg = torch.from_numpy(batch["image"]), torch.from_numpy(batch["seg"])
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for sample in range(image.shape[0]):
            transforms(image=image[sample].clone(), segmentation=seg[sample].clone())
        seconds.append(time.perf_counter() - start)
    print(json.dumps({"seconds_per_batch": seconds, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
