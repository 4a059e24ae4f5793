"""The network keyword arguments the method writes into every plan (METHOD.md 3.9).

Only the topology (features, kernels, strides, depths) varies between plans; the layer types and their
settings are fixed: instance norm with affine parameters, leaky ReLU, biases, no dropout.
"""

from __future__ import annotations

from collections.abc import Sequence

OPS_REQUIRING_IMPORT = ("conv_op", "norm_op", "dropout_op", "nonlin")


def method_arch_kwargs(
    features_per_stage: Sequence[int],
    kernel_sizes: Sequence[Sequence[int]],
    strides: Sequence[Sequence[int]],
    encoder_depths_key: str,
    encoder_depths: Sequence[int],
    decoder_depths: Sequence[int],
) -> dict:
    """`encoder_depths_key` is `n_conv_per_stage` (plain U-Net) or `n_blocks_per_stage` (ResEnc)."""
    dim = len(kernel_sizes[0])
    return {
        "n_stages": len(features_per_stage),
        "features_per_stage": list(features_per_stage),
        "conv_op": f"torch.nn.modules.conv.Conv{dim}d",
        "kernel_sizes": [list(k) for k in kernel_sizes],
        "strides": [list(s) for s in strides],
        encoder_depths_key: list(encoder_depths),
        "n_conv_per_stage_decoder": list(decoder_depths),
        "conv_bias": True,
        "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{dim}d",
        "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None,
        "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    }
