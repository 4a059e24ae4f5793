"""Reference: nnU-Net v2's `resample_data_or_seg_to_shape` on arrays. Usage: preprocess_resampling.py IN OUT.

IN is an .npz with `array_0`, `array_1`, ... and `arguments`, a JSON list with one object per array
({new_shape, current_spacing, new_spacing, is_seg, order, order_z, force_separate_z}). OUT receives an
.npz with `result_0`, `result_1`, ... The last stdout line is JSON with the seconds per call. Runs only
in the reference environment.
"""

import json
import sys
import time

import numpy as np


def main() -> None:
    from nnunetv2.preprocessing.resampling.default_resampling import (
        resample_data_or_seg_to_shape,
    )

    source = np.load(sys.argv[1])
    results, seconds = {}, []
    for index, arguments in enumerate(json.loads(str(source["arguments"]))):
        array = source[f"array_{index}"]
        if arguments["is_seg"]:
            # nnU-Net reads label maps as float32 and carries them so through preprocessing.
            array = array.astype(np.float32)
        start = time.perf_counter()
        results[f"result_{index}"] = resample_data_or_seg_to_shape(
            array,
            arguments["new_shape"],
            arguments["current_spacing"],
            arguments["new_spacing"],
            is_seg=arguments["is_seg"],
            order=arguments["order"],
            order_z=arguments["order_z"],
            force_separate_z=arguments["force_separate_z"],
        )
        seconds.append(time.perf_counter() - start)
    np.savez(sys.argv[2], **results)
    print(json.dumps({"seconds": seconds}))


if __name__ == "__main__":
    main()
