"""Multipart routes read their body themselves (see app.multipart); these helpers validate the text
fields with a pydantic model, as FastAPI would, and describe the body in the OpenAPI document."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from app.errors import Unprocessable, describe_validation_error

Form = TypeVar("Form", bound=BaseModel)


def parse_fields(model: type[Form], fields: dict[str, str]) -> Form:
    """The form's text fields as `model`; every invalid field is named in one 422."""
    try:
        return model.model_validate(fields)
    except ValidationError as error:
        raise Unprocessable(
            [describe_validation_error({**item, "loc": ("body", *item["loc"])}) for item in error.errors()]
        ) from None


@dataclass(frozen=True)
class FilePart:
    description: str
    is_required: bool = True
    is_repeated: bool = False


def multipart_body(model: type[BaseModel] | None, files: dict[str, FilePart]) -> dict[str, Any]:
    """`openapi_extra` for a multipart route: `model`'s text fields plus the file fields."""
    schema: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
    if model is not None:
        generated = model.model_json_schema()
        schema["properties"].update(generated.get("properties", {}))
        schema["required"].extend(generated.get("required", []))
    binary = {"type": "string", "format": "binary"}
    for name, part in files.items():
        schema["properties"][name] = (
            {"type": "array", "items": binary, "description": part.description}
            if part.is_repeated
            else {**binary, "description": part.description}
        )
        if part.is_required:
            schema["required"].append(name)
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}
