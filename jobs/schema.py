"""Payload schemas: a small JSON Schema subset, validated here and published in the OpenAPI document.

Supported keywords: type (object, string, integer, number, boolean, array), properties,
required, additionalProperties (false), minimum, maximum, minLength, maxLength, enum,
items, maxItems, default. That is enough to describe job payloads (ids, small options)
and keeps the error messages specific: each names the field and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
}


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


def _type_ok(value: Any, expected: str) -> bool:
    if expected in ("integer", "number") and isinstance(value, bool):
        return False  # bool is an int subclass in Python, not in JSON
    return isinstance(value, _PY_TYPES[expected])


def validate(value: Any, schema: dict, *, path: str = "") -> list[FieldError]:
    """Return every way ``value`` breaks ``schema`` (empty list when it conforms)."""
    name = path or "payload"
    expected = schema.get("type")
    if expected and not _type_ok(value, expected):
        return [FieldError(name, f"expected {expected}, got {type(value).__name__}")]
    errors: list[FieldError] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(FieldError(name, f"expected one of {schema['enum']}, got {value!r}"))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(FieldError(name, f"expected a value >= {schema['minimum']}, got {value}"))
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(FieldError(name, f"expected a value <= {schema['maximum']}, got {value}"))
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(FieldError(name, f"expected at least {schema['minLength']} characters"))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(FieldError(name, f"expected at most {schema['maxLength']} characters"))
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(FieldError(name, f"expected at most {schema['maxItems']} items, got {len(value)}"))
        if "items" in schema:
            for index, item in enumerate(value):
                errors.extend(validate(item, schema["items"], path=f"{name}[{index}]"))
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for required in schema.get("required", []):
            if required not in value:
                errors.append(FieldError(_join(path, required), "this field is required"))
        if schema.get("additionalProperties") is False:
            for key in value:
                if key not in properties:
                    allowed = ", ".join(sorted(properties)) or "none"
                    errors.append(FieldError(_join(path, key), f"unexpected field (allowed: {allowed})"))
        for key, sub_schema in properties.items():
            if key in value:
                errors.extend(validate(value[key], sub_schema, path=_join(path, key)))
    return errors


def with_defaults(payload: dict, schema: dict) -> dict:
    """Fill top-level defaults declared by the schema."""
    filled = dict(payload)
    for key, sub_schema in schema.get("properties", {}).items():
        if key not in filled and "default" in sub_schema:
            filled[key] = sub_schema["default"]
    return filled


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
