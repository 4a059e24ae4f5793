"""Where a voxel grid sits in the world: the record preprocessing keeps to write results back exactly.

Kept apart from `core.io` so that code which only reads preprocessed cases (training, export) does not
need SimpleITK.
"""

from __future__ import annotations

from dataclasses import dataclass

DUMMY_2D_SPACING_FACTOR = 999.0


@dataclass(frozen=True)
class Geometry:
    """`spacing` follows the array axes (z, y, x), with a dummy first value for 2D images (999 × the
    largest in-plane spacing, as nnU-Net v2). `itk_spacing`, `origin` and `direction` are SimpleITK's
    own (x, y, z) values, kept verbatim so that a written segmentation carries exactly the geometry of
    the image it was computed from.
    """

    spacing: tuple[float, ...]
    itk_spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]
    image_dimension: int

    @classmethod
    def from_itk(
        cls, itk_spacing: tuple[float, ...], origin: tuple[float, ...], direction: tuple[float, ...]
    ) -> Geometry:
        """From SimpleITK's spacing, origin and direction; the dimension is the spacing's length."""
        spacing = tuple(reversed(itk_spacing))
        if len(itk_spacing) == 2:
            spacing = (DUMMY_2D_SPACING_FACTOR * max(itk_spacing), *spacing)
        return cls(
            spacing=tuple(float(s) for s in spacing),
            itk_spacing=tuple(float(s) for s in itk_spacing),
            origin=tuple(float(o) for o in origin),
            direction=tuple(float(d) for d in direction),
            image_dimension=len(itk_spacing),
        )

    def to_json(self) -> dict:
        return {
            "spacing": list(self.spacing),
            "itk_spacing": list(self.itk_spacing),
            "origin": list(self.origin),
            "direction": list(self.direction),
            "image_dimension": self.image_dimension,
        }

    @classmethod
    def from_json(cls, data: dict) -> Geometry:
        return cls(
            spacing=tuple(float(s) for s in data["spacing"]),
            itk_spacing=tuple(float(s) for s in data["itk_spacing"]),
            origin=tuple(float(o) for o in data["origin"]),
            direction=tuple(float(d) for d in data["direction"]),
            image_dimension=int(data["image_dimension"]),
        )
