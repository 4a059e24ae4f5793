"""nnU-Net v2's networks and ours, built from the same plans, are interchangeable (METHOD.md 6).

The reference builds each network once (one process for all cases); we check that the state-dict
keys, their order and shapes are equal, that the reference's weights load into ours with
`strict=True`, that both give the same logits for the same input (with and without deep
supervision), and that with the same seed both draw the same initial weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.network import build_network, build_network_from_architecture
from tests.core.network.cases import TINY_CASES, planned_configuration
from tests.reference import run_reference

pytestmark = pytest.mark.parity

SEED = 20240611
# Planned with the default and ResEnc M presets for a CT-like dataset; compared by keys and shapes.
PLANNED = {
    f"{preset}_{configuration}": (preset, configuration)
    for preset in ("default", "ResEncM")
    for configuration in ("2d", "3d_fullres")
}
PLANNED_INPUT_CHANNELS, PLANNED_CLASSES = 1, 3


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """Run nnU-Net v2 once for every case; returns its JSON answer and the folder of its files."""
    folder = tmp_path_factory.mktemp("network_reference")
    cases = [
        {
            "name": name,
            "architecture": case.architecture.to_json(),
            "input_channels": case.input_channels,
            "num_classes": case.num_classes,
            "seed": SEED,
            "input_shape": list(case.input_shape),
        }
        for name, case in TINY_CASES.items()
    ]
    cases += [
        {
            "name": name,
            "architecture": planned_configuration(preset, configuration).architecture.to_json(),
            "input_channels": PLANNED_INPUT_CHANNELS,
            "num_classes": PLANNED_CLASSES,
            "seed": SEED,
            "input_shape": None,
        }
        for name, (preset, configuration) in PLANNED.items()
    ]
    cases_file = folder / "cases.json"
    cases_file.write_text(json.dumps(cases))
    return run_reference("network_reference.py", str(cases_file), str(folder)), folder


def _keys(network: torch.nn.Module) -> list[list[object]]:
    return [[key, list(value.shape)] for key, value in network.state_dict().items()]


@pytest.mark.parametrize("name", sorted(TINY_CASES))
def test_tiny_network_equals_nnunet(reference: tuple[dict, Path], name: str) -> None:
    answer, folder = reference
    case = TINY_CASES[name]
    torch.manual_seed(SEED)
    ours = build_network_from_architecture(case.architecture, case.input_channels, case.num_classes)
    assert _keys(ours) == answer[name]["keys"]
    assert sum(p.numel() for p in ours.parameters()) == answer[name]["num_parameters"]

    theirs = torch.load(folder / f"{name}.pt", weights_only=True)
    seeded = ours.state_dict()
    drawn_differently = [key for key, value in theirs.items() if not torch.equal(seeded[key], value)]
    assert drawn_differently == []

    ours.load_state_dict(theirs, strict=True)
    ours.eval()
    data = torch.from_numpy(np.load(folder / f"{name}_input.npy"))
    expected = np.load(folder / f"{name}_outputs.npz")
    with torch.no_grad():
        outputs = ours(data)
        ours.deep_supervision = False
        single = ours(data)
    assert isinstance(outputs, list)
    assert len(outputs) == len(expected.files) - 1
    for index, output in enumerate(outputs):
        np.testing.assert_allclose(output.numpy(), expected[f"ds_{index}"], rtol=0, atol=1e-5)
    assert isinstance(single, torch.Tensor)
    np.testing.assert_allclose(single.numpy(), expected["single"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", sorted(PLANNED))
def test_planned_network_has_nnunet_state_dict(reference: tuple[dict, Path], name: str) -> None:
    answer, _ = reference
    configuration = planned_configuration(*PLANNED[name])
    ours = build_network(configuration, PLANNED_INPUT_CHANNELS, PLANNED_CLASSES)
    assert _keys(ours) == answer[name]["keys"]
    assert sum(p.numel() for p in ours.parameters()) == answer[name]["num_parameters"]
