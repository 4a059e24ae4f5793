"""Reference: nnU-Net v2's networks built from plans architectures. Usage: network_reference.py CASES OUT_DIR.

CASES is a JSON file: a list of {"name", "architecture" (a plans `architecture` object),
"input_channels", "num_classes", "seed", "input_shape" (null: names and shapes only)}. Each network
is built as nnU-Net v2's trainer builds it (`get_network_from_plans`, initialised, deep supervision
on) after `torch.manual_seed(seed)`. For a case with an input shape, OUT_DIR receives
`<name>.pt` (the state dict), `<name>_input.npy` (standard normal, seeded) and
`<name>_outputs.npz` (eval-mode logits: `ds_0`... with deep supervision, `single` without).
The last stdout line maps each case name to its ordered state-dict keys with shapes and its
parameter count. Runs only in the reference environment.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch


def run_case(case: dict, out_dir: Path) -> dict:
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    architecture = case["architecture"]
    torch.manual_seed(case["seed"])
    network = get_network_from_plans(
        architecture["network_class_name"],
        architecture["arch_kwargs"],
        architecture["_kw_requires_import"],
        case["input_channels"],
        case["num_classes"],
        allow_init=True,
        deep_supervision=True,
    )
    state = network.state_dict()
    if case["input_shape"] is not None:
        name = case["name"]
        torch.save(state, out_dir / f"{name}.pt")
        rng = np.random.default_rng(case["seed"])
        data = rng.standard_normal(case["input_shape"]).astype(np.float32)
        np.save(out_dir / f"{name}_input.npy", data)
        network.eval()
        with torch.no_grad():
            outputs = {f"ds_{i}": o.numpy() for i, o in enumerate(network(torch.from_numpy(data)))}
            network.decoder.deep_supervision = False
            outputs["single"] = network(torch.from_numpy(data)).numpy()
        np.savez(out_dir / f"{name}_outputs.npz", **outputs)
    return {
        "keys": [[key, list(value.shape)] for key, value in state.items()],
        "num_parameters": sum(p.numel() for p in network.parameters()),
    }


def main() -> None:
    cases = json.loads(Path(sys.argv[1]).read_text())
    out_dir = Path(sys.argv[2])
    torch.set_num_threads(1)
    print(json.dumps({case["name"]: run_case(case, out_dir) for case in cases}))


if __name__ == "__main__":
    main()
