"""From a case's logits on the preprocessed grid to its segmentation on the input's grid (METHOD.md 7.4).

The order is nnU-Net v2's (`convert_predicted_logits_to_segmentation_with_correct_shape`): the logits,
not probabilities, are resampled to the cropped shape with the plans' probability resampling and keep
their dtype (nnU-Net's are float16, ours float32 unless asked otherwise); the segmentation is their
argmax (labels; softmax does not move an argmax) or the regions painted in `regions_class_order` where
the sigmoid exceeds 0.5; probabilities, when asked for, are the softmax or sigmoid of the resampled
logits in float32. Then the crop is reverted (outside is background: probability 1 for background in
label mode, 0 for regions) and the transpose undone. Resampling runs one channel at a time, so the
peak is the output plus one float32 channel; without probabilities the segmentation is built channel
by channel as they come out of the resampling (a running maximum), so the resampled logits are never
held all at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.dataset import DatasetSpec
from core.ensembling import PROBABILITIES_KEY, PROBABILITIES_SUFFIX
from core.files import write_json_atomically, write_npz_atomically
from core.plans import Plans
from core.preprocessed import CaseProperties
from core.preprocessing import target_spacing
from core.resampling import resample


@dataclass(frozen=True)
class OutputLayout:
    """What the network's output channels mean: labels (softmax) or regions (sigmoid, painted in
    `regions_class_order`, later regions over earlier ones; METHOD.md 1.2)."""

    num_outputs: int
    regions_class_order: tuple[int, ...] | None
    max_label: int

    @classmethod
    def from_spec(cls, spec: DatasetSpec) -> OutputLayout:
        if spec.has_regions:
            order = tuple(spec.regions_class_order or ())
            return cls(len(order), order, max(order, default=0))
        return cls(len(spec.all_labels), None, max(spec.all_labels))

    @property
    def has_regions(self) -> bool:
        return self.regions_class_order is not None

    @property
    def segmentation_dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.max_label < 255 else np.uint16)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        return torch.sigmoid(logits) if self.has_regions else torch.softmax(logits, dim=0)

    def segmentation(self, logits: torch.Tensor | Iterable[np.ndarray]) -> np.ndarray:
        """From the logits, or their channels one at a time: the label of the first largest channel
        (argmax's rule), or the regions painted in order."""
        segmentation = best = None
        for index, values in enumerate(logits):
            channel = np.asarray(values)
            if segmentation is None:
                segmentation = np.zeros(channel.shape, dtype=self.segmentation_dtype)
            if self.has_regions:
                label = self.regions_class_order[index]
                segmentation[(torch.sigmoid(torch.from_numpy(channel).float()) > 0.5).numpy()] = label
            elif best is None:
                best = channel.copy()
            else:
                segmentation[channel > best] = index
                np.maximum(best, channel, out=best)
        if segmentation is None:
            raise ValueError("no logits channels")
        return segmentation


def resampled_channels(
    logits: torch.Tensor, properties: CaseProperties, plans: Plans, configuration_name: str
) -> Iterator[np.ndarray]:
    """Each channel of logits (K, *preprocessed) on the cropped shape, with the probability
    resampling, one at a time (as they are when the shapes already agree)."""
    configuration = plans.configuration(configuration_name)
    spacing = [properties.spacing[axis] for axis in plans.transpose_forward]
    current = target_spacing(configuration, spacing)
    shape = properties.shape_after_cropping_and_before_resampling
    kwargs = configuration.resampling_fn_probabilities_kwargs
    source = logits.numpy()
    for channel in range(source.shape[0]):
        if tuple(source.shape[1:]) == tuple(shape):
            yield source[channel]
        else:
            yield resample(source[channel : channel + 1], shape, current, spacing, kwargs)[0]


def resample_logits(
    logits: torch.Tensor, properties: CaseProperties, plans: Plans, configuration_name: str
) -> torch.Tensor:
    """Logits (K, *preprocessed) → (K, *cropped shape), same dtype, with the probability resampling."""
    shape = properties.shape_after_cropping_and_before_resampling
    if tuple(logits.shape[1:]) == tuple(shape):
        return logits
    result = np.empty((logits.shape[0], *shape), dtype=logits.numpy().dtype)
    for channel, values in enumerate(resampled_channels(logits, properties, plans, configuration_name)):
        result[channel] = values
    return torch.from_numpy(result)


def _uncrop(array: np.ndarray, properties: CaseProperties, fill: np.ndarray | None = None) -> np.ndarray:
    """Paste (…, *cropped) into (…, *shape_before_cropping), zeros (or `fill` per channel) outside."""
    leading = array.shape[: array.ndim - len(properties.shape_before_cropping)]
    full = np.zeros((*leading, *properties.shape_before_cropping), dtype=array.dtype)
    if fill is not None:
        full[...] = fill.reshape(*fill.shape, *([1] * len(properties.shape_before_cropping)))
    box = tuple(slice(start, stop) for start, stop in properties.bbox_used_for_cropping)
    full[(..., *box)] = array
    return full


def export_logits(
    logits: torch.Tensor,
    properties: CaseProperties,
    plans: Plans,
    configuration_name: str,
    layout: OutputLayout,
    return_probabilities: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The segmentation (z, y, x) and optionally the probabilities (K, z, y, x) in the reader's axis
    order and the input's voxel grid, from host logits (K, *preprocessed shape)."""
    if not return_probabilities:
        channels = resampled_channels(logits, properties, plans, configuration_name)
        segmentation = _uncrop(layout.segmentation(channels), properties)
        return segmentation.transpose(plans.transpose_backward), None
    resampled = resample_logits(logits, properties, plans, configuration_name)
    segmentation = _uncrop(layout.segmentation(resampled), properties)
    segmentation = segmentation.transpose(plans.transpose_backward)
    probabilities = layout.probabilities(resampled).numpy()
    del resampled
    fill = np.zeros(layout.num_outputs, dtype=np.float32)
    if not layout.has_regions:
        fill[0] = 1.0
    probabilities = _uncrop(probabilities, properties, fill)
    return segmentation, probabilities.transpose([0, *(axis + 1 for axis in plans.transpose_backward)])


def write_probabilities(probabilities: np.ndarray, properties: CaseProperties, stem: Path) -> None:
    """`stem.npz` (key "probabilities", float32, reader axis order) and `stem.json` (the properties),
    each written to a temporary name and renamed."""
    stem = Path(stem)
    write_npz_atomically(
        stem.with_name(f"{stem.name}{PROBABILITIES_SUFFIX}"),
        **{PROBABILITIES_KEY: probabilities.astype(np.float32, copy=False)},
    )
    write_json_atomically(stem.with_name(f"{stem.name}.json"), properties.to_json())
