"""Payload schema validation: every error names the field and what was expected."""

import pytest

from jobs.core.registry import JobType, register
from jobs.core.schema import SchemaDeclarationError, schema_check, validate, with_defaults

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
        "ratio": "expected number, got string",
        "kind": "expected one of ['a', 'b'], got 'c'",
        "tags": "expected at most 2 items, got 3",
        "tags[1]": "expected string, got integer",
        "flag": "expected boolean, got integer",
        "other": "unexpected field (allowed: count, email, flag, kind, ratio, tags)",
    }


def test_booleans_are_not_numbers_and_lengths_are_checked():
    assert errors_of({"email": "ab", "count": True}) == {
        "email": "expected at least 3 characters",
        "count": "expected integer, got boolean",
    }


def test_non_object_payload():
    assert errors_of([1]) == {"payload": "expected object, got array"}


def test_defaults_fill_missing_fields_only():
    assert with_defaults({"email": "x@y.z"}, SCHEMA) == {"email": "x@y.z", "count": 1}
    assert with_defaults({"email": "x@y.z", "count": 5}, SCHEMA)["count"] == 5


NESTED = {
    "type": "object",
    "properties": {
        "target": {
            "type": "object",
            "additionalProperties": False,
            "required": ["id"],
            "properties": {"id": {"type": "integer"}, "label": {"type": "string"}},
        },
        "rows": {
            "type": "array",
            "items": {"type": "object", "required": ["sku"], "properties": {"sku": {"type": "string"}}},
        },
    },
}


def test_nested_fields_are_named_by_their_path():
    errors = {error.field: error.message for error in validate(
        {"target": {"label": 3, "x": 1}, "rows": [{"sku": "a"}, {}, {"sku": 7}]}, NESTED)}  # fmt: skip
    assert errors == {
        "target.id": "this field is required",
        "target.x": "unexpected field (allowed: id, label)",
        "target.label": "expected string, got integer",
        "rows[1].sku": "this field is required",
        "rows[2].sku": "expected string, got integer",
    }


def test_without_additional_properties_false_unknown_fields_pass():
    assert validate({"anything": 1, "target": {"id": 1}}, NESTED) == []


def test_integers_are_numbers_but_fractions_are_not_integers():
    # JSON Schema 2020-12: 2.0 is the integer 2 (JSON has one number type); 2.5 is not an integer.
    assert errors_of({"email": "abc", "ratio": 2}) == {}
    assert errors_of({"email": "abc", "count": 2.0}) == {}
    assert errors_of({"email": "abc", "count": 2.5}) == {"count": "expected integer, got number"}


def test_a_wrong_type_is_reported_once_not_with_every_constraint():
    # The type is wrong; min/max/length checks on such a value would only add noise.
    assert errors_of({"email": 12345}) == {"email": "expected string, got integer"}


def test_maximum_and_max_length_name_the_limit():
    assert errors_of({"email": "x" * 21, "count": 11}) == {
        "email": "expected at most 20 characters",
        "count": "expected a value <= 10, got 11",
    }


def test_error_dicts_are_what_the_api_returns():
    (error,) = validate({}, {"type": "object", "required": ["id"]})
    assert error.as_dict() == {"field": "id", "message": "this field is required"}


def test_defaults_fill_top_level_only_and_do_not_mutate_the_input():
    payload = {"target": {"id": 1}}
    schema = {
        "properties": {"target": {"type": "object", "properties": {"n": {"default": 5}}}, "mode": {"default": "x"}}
    }
    assert with_defaults(payload, schema) == {"target": {"id": 1}, "mode": "x"}
    assert payload == {"target": {"id": 1}}


def test_the_canary_schema_accepts_its_defaults_and_refuses_the_rest():
    from jobs.tasks import CANARY_SCHEMA

    assert validate(with_defaults({}, CANARY_SCHEMA), CANARY_SCHEMA) == []
    assert {error.field for error in validate({"seconds": 601, "fail_first": -1, "oops": 1}, CANARY_SCHEMA)} == {
        "seconds", "fail_first", "oops",
    }  # fmt: skip


# ---------------------------------------------------------------------------
# Declaration time: every keyword is enforced or refused (no silently ignored constraint)
# ---------------------------------------------------------------------------


def test_pattern_and_format_are_enforced():
    schema = {"type": "object", "properties": {"sku": {"type": "string", "pattern": "^SUP-[0-9]+$"},
                                               "contact": {"type": "string", "format": "email"}}}  # fmt: skip
    schema_check(schema, name="tests.ok")
    assert {error.field: error.message for error in validate({"sku": "nope", "contact": "not-an-email"}, schema)} == {
        "sku": "expected text matching '^SUP-[0-9]+$'",
        "contact": "expected a valid email, got 'not-an-email'",
    }


@pytest.mark.parametrize(
    "schema, complaint",
    [
        ({"type": "object", "properties": {"n": {"type": "integer", "minimun": 1}}}, "'minimun'"),  # a typo
        ({"type": "object", "x-nullable": True}, "'x-nullable'"),  # an OpenAPI extension
        ({"type": "object", "properties": {"d": {"type": "string", "format": "date-time"}}}, "'date-time'"),
        ({"type": "strnig"}, "not valid JSON Schema"),
        ({"$schema": "http://json-schema.org/draft-04/schema#", "type": "object"}, "only https://json-schema.org"),
        ({"$ref": "https://example.com/schema.json"}, "points outside"),
        ({"type": "object", "allOf": [{"properties": {"a": {"exclusiveMinimum": True}}}]}, "not valid"),
    ],
)
def test_keywords_that_would_not_be_enforced_are_refused_at_declaration(schema, complaint):
    with pytest.raises(SchemaDeclarationError, match=complaint):
        schema_check(schema, name="tests.bad")
    with pytest.raises(SchemaDeclarationError):
        register(JobType(name="tests.bad_schema", handler=lambda ctx, payload: None, api_schema=schema))
