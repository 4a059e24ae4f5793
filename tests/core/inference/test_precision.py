"""How the network runs at prediction: the norm reformulation is exact, the layout and precision
change nothing that matters, and bfloat16 segments as float32 does on a trained model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core import precision
from core.inference import Predictor, PredictorError
from core.inference.network_runtime import (
    ChannelsLastInstanceNorm,
    InstanceNormByGroups,
    NetworkRunner,
    replace_instance_norms,
)
from core.precision import autocast_dtype, has_native_bf16

CPU = torch.device("cpu")
DICE_FLOOR = 0.999


class NormNetwork(nn.Module):
    """Conv → instance norm → LeakyReLU → conv → instance norm, the first norm also registered under a
    second name (as the U-Net's blocks register theirs), with non-trivial affine parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm3d(4, affine=True)
        self.all_modules = nn.Sequential(
            nn.Conv3d(2, 4, 3, padding=1),
            self.norm,
            nn.LeakyReLU(),
            nn.Conv3d(4, 3, 1),
            nn.InstanceNorm3d(3, affine=True),
        )
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator))
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.all_modules(x)


def affine_norm(cls: type[nn.Module], channels: int) -> nn.Module:
    norm = cls(channels, affine=True, eps=1e-5)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2)
        norm.bias.uniform_(-1, 1)
    return norm


@torch.inference_mode()
def test_instance_norm_by_groups_is_instance_norm_in_any_layout() -> None:
    norm = affine_norm(nn.InstanceNorm3d, 5)
    x = torch.randn(2, 5, 6, 7, 8) * 3 + 1
    expected = norm(x)
    by_groups = InstanceNormByGroups(norm)
    torch.testing.assert_close(by_groups(x), expected, atol=1e-5, rtol=1e-5)
    channels_last = by_groups(x.to(memory_format=torch.channels_last_3d))
    assert channels_last.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(channels_last, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("cls", "layout"), [(nn.InstanceNorm3d, torch.channels_last_3d), (nn.InstanceNorm2d, torch.channels_last)]
)
@torch.inference_mode()
def test_channels_last_instance_norm_keeps_float32_accuracy_where_group_norm_loses_it(cls, layout) -> None:
    """A large feature map with a large mean: group norm's channels-last kernel sums it one value after
    another; ours stays within float32 rounding of float64's result, in the input's layout."""
    norm = affine_norm(cls, 8)
    shape = (2, 8, 24, 96, 96) if cls is nn.InstanceNorm3d else (2, 8, 480, 480)
    x = (torch.randn(shape) * 0.5 + 13).contiguous(memory_format=layout)
    exact = F.instance_norm(x.double(), weight=norm.weight.double(), bias=norm.bias.double(), eps=norm.eps)
    ours = ChannelsLastInstanceNorm(norm)(x)
    assert ours.dtype == torch.float32 and ours.is_contiguous(memory_format=layout)
    assert (ours.double() - exact).abs().max() < 1e-4
    by_groups = InstanceNormByGroups(norm)(x)
    assert (by_groups.double() - exact).abs().max() > 1e-3  # why float32 passes do not use it


@torch.inference_mode()
def test_swapping_norms_keeps_names_sharing_and_results() -> None:
    network = NormNetwork()
    names = list(network.state_dict())
    x = torch.randn(2, 2, 6, 8, 8)
    expected = network(x)
    replace_instance_norms(network, InstanceNormByGroups)
    assert list(network.state_dict()) == names
    assert isinstance(network.norm, InstanceNormByGroups) and network.norm is network.all_modules[1]
    assert not any(isinstance(m, nn.InstanceNorm3d) for m in network.modules())
    torch.testing.assert_close(network(x), expected, atol=1e-5, rtol=1e-5)
    network.load_state_dict({name: torch.zeros_like(value) for name, value in network.state_dict().items()})
    assert network(x).abs().max() == 0  # loading weights reaches the shared parameters


@torch.inference_mode()
def test_runner_returns_float32_standard_layout_logits_in_every_precision() -> None:
    network = NormNetwork()
    x = torch.randn(2, 2, 6, 8, 8)
    expected = network(x)
    fp32 = NetworkRunner(NormNetwork(), CPU, "fp32")
    assert fp32.autocast is None and fp32.memory_format == torch.contiguous_format
    assert sum(isinstance(m, nn.InstanceNorm3d) for m in fp32.network.modules()) == 2  # torch's own norm
    result = fp32(x)
    assert result.dtype == torch.float32 and result.is_contiguous()
    torch.testing.assert_close(result, expected, atol=1e-5, rtol=1e-5)
    bf16 = NetworkRunner(NormNetwork(), CPU, "bf16")
    result = bf16(x)
    assert bf16.autocast == torch.bfloat16 and result.dtype == torch.float32 and result.is_contiguous()
    assert bf16.memory_format == torch.channels_last_3d
    torch.testing.assert_close(result, expected, atol=0.1, rtol=0.05)  # bfloat16 keeps 8 bits


@torch.inference_mode()
def test_auto_on_a_cpu_without_bf16_runs_float32_channels_last(monkeypatch) -> None:
    monkeypatch.setattr(precision, "has_native_bf16", lambda: False)
    network = NormNetwork()
    x = torch.randn(2, 2, 6, 8, 8)
    expected = network(x)
    auto = NetworkRunner(NormNetwork(), CPU, "auto")
    assert auto.autocast is None and auto.memory_format == torch.channels_last_3d
    assert isinstance(auto.network.norm, ChannelsLastInstanceNorm)
    assert auto.network.norm is auto.network.all_modules[1]
    result = auto(x)
    assert result.dtype == torch.float32 and result.is_contiguous()
    torch.testing.assert_close(result, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="reads the CPU flags Linux reports")
def test_auto_precision_is_bf16_exactly_where_the_cpu_has_bf16_instructions() -> None:
    flags = set(Path("/proc/cpuinfo").read_text().split())
    native = bool(flags & {"avx512_bf16", "amx_bf16"})
    assert has_native_bf16() == native
    assert autocast_dtype(CPU, "auto") == (torch.bfloat16 if native else None)
    assert autocast_dtype(torch.device("cuda"), "auto") == torch.float16
    assert autocast_dtype(torch.device("cuda"), "fp32") is None
    assert autocast_dtype(CPU, "fp16") == torch.float16


def test_unknown_precision_is_named(tiny_model: Path) -> None:
    with pytest.raises(PredictorError, match="precision must be one of auto, fp32, bf16, fp16; got fp64"):
        Predictor.from_model_dir(tiny_model / "model", "3d_fullres", device="cpu", precision="fp64")


def test_bf16_segments_as_fp32_on_a_trained_model(tiny_model: Path) -> None:
    """The model of tests/trained_model.py is confident, so any disagreement is bfloat16's doing."""
    image = [tiny_model / "raw" / "imagesTr" / "case_003_0000.nii.gz"]
    predictions = {
        precision: Predictor.from_model_dir(
            tiny_model / "model", "3d_fullres", device="cpu", precision=precision
        ).predict_case(image, return_probabilities=True)
        for precision in ("fp32", "bf16")
    }
    fp32, bf16 = predictions["fp32"], predictions["bf16"]
    assert (fp32.segmentation == 1).sum() > 100  # a real foreground to agree on
    for label in (1, 2):
        a, b = fp32.segmentation == label, bf16.segmentation == label
        total = a.sum() + b.sum()
        dice = 1.0 if total == 0 else 2 * (a & b).sum() / total
        assert dice >= DICE_FLOOR, (label, dice)
    assert np.abs(fp32.probabilities - bf16.probabilities).max() < 0.05
