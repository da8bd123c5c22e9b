"""Payload schema validation: every error names the field and what was expected."""

from jobs.schema import validate, with_defaults

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["email"],
    "properties": {
        "email": {"type": "string", "minLength": 3, "maxLength": 20},
        "count": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
        "ratio": {"type": "number"},
        "kind": {"type": "string", "enum": ["a", "b"]},
        "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
        "flag": {"type": "boolean"},
    },
}


def errors_of(value) -> dict[str, str]:
    return {error.field: error.message for error in validate(value, SCHEMA)}


def test_valid_payload_has_no_errors():
    assert errors_of({"email": "a@b.c", "count": 3, "ratio": 0.5, "kind": "a", "tags": ["x"], "flag": True}) == {}


def test_each_problem_is_reported_with_its_field():
    errors = errors_of({"count": 0, "ratio": "1", "kind": "c", "tags": ["x", 2, "y"], "flag": 1, "other": None})
    assert errors == {
        "email": "this field is required",
        "count": "expected a value >= 1, got 0",
        "ratio": "expected number, got str",
        "kind": "expected one of ['a', 'b'], got 'c'",
        "tags": "expected at most 2 items, got 3",
        "tags[1]": "expected string, got int",
        "flag": "expected boolean, got int",
        "other": "unexpected field (allowed: count, email, flag, kind, ratio, tags)",
    }


def test_booleans_are_not_numbers_and_lengths_are_checked():
    assert errors_of({"email": "ab", "count": True}) == {
        "email": "expected at least 3 characters",
        "count": "expected integer, got bool",
    }


def test_non_object_payload():
    assert errors_of([1]) == {"payload": "expected object, got list"}


def test_defaults_fill_missing_fields_only():
    assert with_defaults({"email": "x@y.z"}, SCHEMA) == {"email": "x@y.z", "count": 1}
    assert with_defaults({"email": "x@y.z", "count": 5}, SCHEMA)["count"] == 5
