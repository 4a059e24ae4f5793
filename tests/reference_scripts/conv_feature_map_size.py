"""Reference: dynamic-network-architectures' `compute_conv_feature_map_size`. Usage: SCRIPT CASES.

CASES is a JSON file `{"cases": [{"network_class_name", "arch_kwargs", "input_channels",
"num_classes", "deep_supervision", "patch_size"}]}`; each network is built the way nnU-Net's planner
builds it (no weight init). Prints `{"sizes": [...]}` as its last line, in case order.
"""

import json
import sys
from pathlib import Path

REQUIRES_IMPORT = ("conv_op", "norm_op", "dropout_op", "nonlin")


def main() -> None:
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    cases = json.loads(Path(sys.argv[1]).read_text())["cases"]
    sizes = []
    for case in cases:
        network = get_network_from_plans(
            case["network_class_name"],
            case["arch_kwargs"],
            REQUIRES_IMPORT,
            case["input_channels"],
            case["num_classes"],
            allow_init=False,
            deep_supervision=case["deep_supervision"],
        )
        sizes.append(int(network.compute_conv_feature_map_size(case["patch_size"])))
    print(json.dumps({"sizes": sizes}))


if __name__ == "__main__":
    main()
