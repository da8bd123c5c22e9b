"""The OpenAPI document and the interactive docs page."""

import re

import pytest

from jobs.core import registry
from jobs.core.registry import JobType
from jobs.tasks import CANARY_SCHEMA

pytestmark = pytest.mark.django_db


@pytest.fixture
def document(client) -> dict:
    response = client.get("/api/openapi.json")  # public: no credentials needed
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    return response.json()


def resolve(document: dict, node: dict) -> dict:
    if "$ref" not in node:
        return node
    target = document
    for key in node["$ref"].removeprefix("#/").split("/"):
        target = target[key]
    return target


def all_refs(node) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [ref for value in node.values() for ref in all_refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in all_refs(value)]
    return []


def api_type_names() -> list[str]:
    return [spec.name for spec in registry.all_types() if spec.api_schema is not None]


def test_documents_every_endpoint_of_the_contract(document):
    assert document["openapi"] == "3.1.0"
    assert document["servers"][0]["url"] == "http://testserver/api"
    paths = document["paths"]
    assert set(paths["/jobs"]) == {"get", "post"}
    assert set(paths["/jobs/{job_id}"]) == {"get"} and set(paths["/jobs/{job_id}/cancel"]) == {"post"}
    assert {"/openapi.json", "/docs", "/cron/{name}", "/ops/overview"} <= set(paths)
    operation_ids = [op["operationId"] for methods in paths.values() for op in methods.values()]
    assert len(operation_ids) == len(set(operation_ids))


def test_every_reference_resolves(document):
    for ref in all_refs(document):
        assert resolve(document, {"$ref": ref}), ref


def test_enqueue_body_is_one_variant_per_api_type_discriminated_by_type(document):
    body = document["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    variants = [resolve(document, ref) for ref in body["oneOf"]]

    assert body["discriminator"]["propertyName"] == "type"
    assert set(body["discriminator"]["mapping"]) == {variant["title"] for variant in variants} == set(api_type_names())
    canary = resolve(document, {"$ref": body["discriminator"]["mapping"]["jobs.canary"]})
    assert canary["properties"]["type"] == {"const": "jobs.canary"}
    assert canary["properties"]["payload"] == CANARY_SCHEMA
    assert "Staff only" in canary["description"]


def test_a_newly_declared_api_type_appears_and_internal_types_do_not(client, monkeypatch):
    schema = {"type": "object", "required": ["email"], "properties": {"email": {"type": "string"}}}
    echo = JobType(name="tests.api_echo", handler=lambda ctx, payload: None, api_schema=schema)
    monkeypatch.setitem(registry._registry, echo.name, echo)

    document = client.get("/api/openapi.json").json()
    mapping = document["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"][
        "discriminator"]["mapping"]  # fmt: skip

    assert set(mapping) == set(api_type_names()) and "tests.api_echo" in mapping
    assert "tests.noop" not in mapping  # declares no api_schema: internal only
    echo = resolve(document, {"$ref": mapping["tests.api_echo"]})
    assert echo["required"] == ["type", "payload"] and echo["properties"]["payload"] == schema


def test_headers_errors_and_security_are_documented(document):
    enqueue = document["paths"]["/jobs"]["post"]
    parameters = {resolve(document, p)["name"]: resolve(document, p) for p in enqueue["parameters"]}
    assert {"Idempotency-Key", "X-Request-ID"} <= set(parameters)
    assert "original job" in parameters["Idempotency-Key"]["description"]
    assert "202" in enqueue["description"] and "422" in enqueue["description"]
    accepted = enqueue["responses"]["202"]
    assert {"Location", "Idempotent-Replayed", "X-Request-ID"} <= set(accepted["headers"])
    assert {"400", "401", "403", "422", "500", "503"} <= set(enqueue["responses"])

    cancel = document["paths"]["/jobs/{job_id}/cancel"]["post"]["responses"]
    assert {"200", "202", "404", "409"} <= set(cancel)
    listing = document["paths"]["/jobs"]["get"]
    listed = {resolve(document, p)["name"] for p in listing["parameters"]}
    assert listed >= {"status", "type", "page", "page_size", "owner"}

    error = document["components"]["schemas"]["Error"]["properties"]["error"]
    assert error["required"] == ["code", "message", "detail", "retryable"]
    assert resolve(document, enqueue["responses"]["422"])["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["session"]["in"] == "cookie"
    assert document["security"] == [{"bearer": []}, {"session": []}]


def test_job_schema_lists_every_status(document):
    job = document["components"]["schemas"]["Job"]
    assert job["properties"]["status"]["enum"] == [
        "queued", "running", "retrying", "succeeded", "failed", "dead", "cancelled",
    ]  # fmt: skip
    assert {"progress", "attempts", "error", "result_url", "correlation_id", "replay_of"} <= set(job["properties"])


def test_docs_page_is_self_contained_and_points_at_the_schema(client):
    response = client.get("/api/docs")
    html = response.content.decode()

    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    assert "/api/openapi.json" in html
    # No CDN: nothing is loaded from another host (the machine may have no internet).
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "csrftoken" in response.cookies  # so the page's own POSTs pass the CSRF check
    assert client.post("/api/docs").status_code == 405
