"""Shapes every resource shares: the error body and the paging envelope."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    """One thing wrong with a request; `loc` says where (["body", "labels"], ["archive", "a/b.nii.gz"])."""

    loc: list[str | int] | None = Field(None, examples=[["body", "epochs"]])
    problem: str = Field(examples=["Input should be greater than or equal to 1, got 0"])
    kind: str | None = Field(None, description="machine-readable class", examples=["non_finite_voxels"])


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer: a one-line message and every problem found, not just the first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "message": "2 problems with the uploaded dataset",
                    "detail": [
                        {
                            "loc": ["archive", "imagesTr/case_001_0000.nii.gz"],
                            "problem": "[non_finite_voxels] imagesTr/case_001_0000.nii.gz: 3 NaN or inf "
                            "voxel(s)",
                            "kind": "non_finite_voxels",
                        },
                        {
                            "loc": ["archive", "labelsTr/case_002.nii.gz"],
                            "problem": "[undeclared_label] labelsTr/case_002.nii.gz: label value(s) [3] "
                            "not declared in dataset.json (declared: [0, 1, 2])",
                            "kind": "undeclared_label",
                        },
                    ],
                }
            ]
        }
    )

    message: str
    detail: list[Problem]
