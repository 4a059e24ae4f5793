"""Datasets in the nnU-Net v2 raw format: uploaded whole as an archive, or created empty and filled case
by case."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
CASE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


class DatasetCreate(BaseModel):
    """An empty dataset: the fields of its dataset.json (numTraining is counted as cases arrive)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, examples=["Dataset010_Liver"])
    description: str = Field("", max_length=2000)
    channel_names: dict[str, str] = Field(examples=[{"0": "CT"}])
    labels: dict[str, int | list[int]] = Field(examples=[{"background": 0, "liver": 1, "tumour": 2}])
    file_ending: str = Field(".nii.gz", examples=[".nii.gz"])
    regions_class_order: list[int] | None = Field(None, description="only for region-based labels")


class DatasetUploadForm(BaseModel):
    """Text fields sent beside the archive."""

    name: str | None = Field(None, pattern=NAME_PATTERN, description="default: dataset.json's name")
    description: str = Field("", max_length=2000)


class CaseForm(BaseModel):
    """Text fields sent beside a case's files."""

    is_test: bool = Field(
        False, description="store under imagesTs/ (and labelsTs/ when a label is sent) instead of imagesTr/"
    )


class DatasetCasePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str = Field(examples=["case_007"])
    has_label: bool
    is_test: bool
    created_at: datetime


class DatasetSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(examples=["0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f"])
    name: str = Field(examples=["Dataset010_Liver"])
    description: str
    num_training: int = Field(description="labelled cases in imagesTr/")
    num_test: int = Field(description="cases in imagesTs/")
    size_bytes: int
    has_fingerprint: bool = Field(description="planning has run and measured the dataset")
    created_at: datetime


class DatasetPublic(DatasetSummary):
    spec: dict[str, Any] = Field(description="dataset.json", examples=[{"channel_names": {"0": "CT"}}])
    fingerprint: dict[str, Any] | None = Field(None, description="dataset_fingerprint.json once planned")
    cases: list[DatasetCasePublic]


class DatasetsPublic(BaseModel):
    data: list[DatasetSummary]
    count: int
