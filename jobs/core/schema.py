"""Payload schemas: JSON Schema draft 2020-12, checked by ``jsonschema`` and published in the OpenAPI document.

The draft is pinned (``DRAFT``): a schema may say ``"$schema"`` only to name that draft. Every keyword
a schema uses is either enforced or refused when the job type is declared (``schema_check``): the
draft's own keywords are enforced by jsonschema (``format`` too, for the formats listed in
``ENFORCED_FORMATS``), annotation keywords are allowed, and anything else (a typo, a keyword from
another draft or an OpenAPI extension) is refused instead of being silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError, ValidationError

DRAFT = Draft202012Validator
DRAFT_URI = "https://json-schema.org/draft/2020-12/schema"
# Formats checked without optional dependencies; any other ``format`` is refused at declaration time.
ENFORCED_FORMATS = frozenset({"date", "email", "idn-email", "ipv4", "ipv6", "regex", "uuid"})
_FORMAT_CHECKER = FormatChecker(formats=sorted(ENFORCED_FORMATS))
# Keywords that describe rather than constrain: allowed, never "enforced".
ANNOTATIONS = frozenset({
    "$schema", "$id", "$comment", "$defs", "$anchor", "title", "description", "default", "examples",
    "deprecated", "readOnly", "writeOnly", "contentMediaType", "contentEncoding",
})  # fmt: skip
ENFORCED = frozenset(DRAFT.VALIDATORS) - {"$dynamicRef", "$recursiveRef"}
# Keywords whose value is a schema, a list of schemas, or a name -> schema mapping.
_SUBSCHEMA = frozenset({"items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames",
                        "unevaluatedItems", "unevaluatedProperties"})  # fmt: skip
_SUBSCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SUBSCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "dependentSchemas"})


class SchemaDeclarationError(ValueError):
    """A job type's ``api_schema`` uses something that would not be enforced, or is not valid JSON Schema."""


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


def _walk(schema: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every (location, keyword) in ``schema`` and its subschemas."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        raise SchemaDeclarationError(f"{where}: a schema must be an object or a boolean, got {type(schema).__name__}")
    for keyword, value in schema.items():
        yield where, keyword
        if keyword in _SUBSCHEMA:
            yield from _walk(value, f"{where}/{keyword}")
        elif keyword in _SUBSCHEMA_LISTS and isinstance(value, list):
            for index, item in enumerate(value):
                yield from _walk(item, f"{where}/{keyword}/{index}")
        elif keyword in _SUBSCHEMA_MAPS and isinstance(value, dict):
            for name, item in value.items():
                yield from _walk(item, f"{where}/{keyword}/{name}")


def schema_check(schema: dict[str, Any], *, name: str) -> None:
    """Refuse ``schema`` (raise SchemaDeclarationError) unless every keyword in it is enforced or an annotation."""
    try:
        DRAFT.check_schema(schema)
    except SchemaError as exc:
        raise SchemaDeclarationError(
            f"api_schema of {name!r} is not valid JSON Schema 2020-12: {exc.message}"
        ) from None
    if schema.get("$schema", DRAFT_URI) != DRAFT_URI:
        raise SchemaDeclarationError(f"api_schema of {name!r} names draft {schema['$schema']!r}; only {DRAFT_URI}")
    for where, keyword in _walk(schema, "#"):
        if keyword in ("$ref", "$dynamicRef") and not str(_schema_value(schema, where, keyword)).startswith("#"):
            raise SchemaDeclarationError(f"api_schema of {name!r}: {where}/{keyword} points outside the schema")
        if keyword not in ENFORCED and keyword not in ANNOTATIONS:
            raise SchemaDeclarationError(
                f"api_schema of {name!r}: keyword {keyword!r} at {where} would not be enforced; use a JSON Schema "
                "2020-12 keyword (see jobs/core/schema.py) or leave it out"
            )
        if keyword == "format" and _schema_value(schema, where, keyword) not in ENFORCED_FORMATS:
            raise SchemaDeclarationError(
                f"api_schema of {name!r}: format {_schema_value(schema, where, keyword)!r} at {where} is not checked; "
                f"use one of {', '.join(sorted(ENFORCED_FORMATS))} or a 'pattern'"
            )


def _schema_value(schema: dict[str, Any], where: str, keyword: str) -> Any:
    """The value of ``keyword`` in the subschema at JSON pointer ``where`` (as produced by ``_walk``)."""
    node: Any = schema
    for part in where.split("/")[1:]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node[keyword]


_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}


def _json_type(value: Any) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _expected(error: ValidationError) -> str:
    """What the failed keyword expected, in the API's words ("expected ..., got ...")."""
    keyword, limit, value = error.validator, error.validator_value, error.instance
    simple: dict[str, Callable[[], str]] = {
        "type": lambda: f"expected {' or '.join(limit) if isinstance(limit, list) else limit}, got {_json_type(value)}",
        "minimum": lambda: f"expected a value >= {limit}, got {value}",
        "maximum": lambda: f"expected a value <= {limit}, got {value}",
        "exclusiveMinimum": lambda: f"expected a value > {limit}, got {value}",
        "exclusiveMaximum": lambda: f"expected a value < {limit}, got {value}",
        "multipleOf": lambda: f"expected a multiple of {limit}, got {value}",
        "minLength": lambda: f"expected at least {limit} characters",
        "maxLength": lambda: f"expected at most {limit} characters",
        "pattern": lambda: f"expected text matching {limit!r}",
        "format": lambda: f"expected a valid {limit}, got {_shown(value)}",
        "enum": lambda: f"expected one of {limit}, got {_shown(value)}",
        "const": lambda: f"expected {limit!r}, got {_shown(value)}",
        "minItems": lambda: f"expected at least {limit} items, got {len(value)}",
        "maxItems": lambda: f"expected at most {limit} items, got {len(value)}",
        "uniqueItems": lambda: "expected unique items",
        "minProperties": lambda: f"expected at least {limit} fields",
        "maxProperties": lambda: f"expected at most {limit} fields",
    }
    if keyword in simple:
        return simple[keyword]()
    message: str = error.message  # jsonschema leaves it unannotated
    return "expected " + (message if len(message) <= 200 else message[:197] + "...")


def _errors_of(error: ValidationError, path: str) -> list[FieldError]:
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path).lstrip(".")

    def join(key: str) -> str:
        return ".".join(part for part in (path, where, key) if part)

    if error.validator == "required":
        present = error.instance if isinstance(error.instance, dict) else {}
        return [FieldError(join(key), "this field is required") for key in error.validator_value if key not in present]
    if error.validator in ("additionalProperties", "unevaluatedProperties") and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        extra = [key for key in error.instance if key not in allowed]
        return [FieldError(join(key), f"unexpected field (allowed: {', '.join(allowed) or 'none'})") for key in extra]
    return [FieldError(join("") or "payload", _expected(error))]


def validate(value: Any, schema: dict[str, Any], *, path: str = "") -> list[FieldError]:
    """Return every way ``value`` breaks ``schema`` (empty list when it conforms), each naming its field."""
    validator = _validator_for(schema)
    found: list[FieldError] = []
    for error in sorted(validator.iter_errors(value), key=lambda error: [str(part) for part in error.absolute_path]):
        found.extend(_errors_of(error, path))
    return found


# Compiled validators by schema object (job types declare theirs once): building one per call cost as much as
# checking a small payload. The schema is kept with its validator, so a recycled id() never matches.
_validators: dict[int, tuple[dict[str, Any], Draft202012Validator]] = {}


def _validator_for(schema: dict[str, Any]) -> Draft202012Validator:
    cached = _validators.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    validator = DRAFT(schema, format_checker=_FORMAT_CHECKER)
    if len(_validators) < 1000:  # job types' schemas, not one per ad-hoc call
        _validators[id(schema)] = (schema, validator)
    return validator


def with_defaults(payload: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Fill top-level defaults declared by the schema."""
    filled = dict(payload)
    for key, sub_schema in schema.get("properties", {}).items():
        if key not in filled and isinstance(sub_schema, dict) and "default" in sub_schema:
            filled[key] = sub_schema["default"]
    return filled
