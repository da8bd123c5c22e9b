from typing import Any

from django.http import HttpRequest, JsonResponse

from jobs.public import ApiError, api_view

from .services import SIGNATURE_FORMAT, WebhookRejected, webhook_accept, webhook_event_schema


@api_view(methods=("POST",))
def supplier_webhook(request: HttpRequest) -> JsonResponse:
    """Signed supplier events: verified, parsed strictly, recorded once; a job fans them out to product jobs."""
    try:
        outcome = webhook_accept(body=request.body, signature_header=request.headers.get("X-Supplier-Signature", ""))
    except WebhookRejected as rejected:
        raise ApiError(rejected.message, code=rejected.code, status=rejected.status, detail=rejected.detail) from None
    body = {"event": outcome.event_id, "duplicate": outcome.duplicate, "products": outcome.products,
            "fan_out_job": outcome.fan_out_job_id}  # fmt: skip
    return JsonResponse(body, status=200 if outcome.duplicate else 202)


def _error(status: int) -> dict[str, Any]:
    return {"$ref": f"#/components/responses/Error{status}"}


def supplier_webhook_openapi() -> dict[str, Any]:
    """The webhook's OpenAPI path item; its body schema is the one ``webhook_accept`` validates with."""
    outcome = {
        "type": "object",
        "required": ["event", "duplicate", "products", "fan_out_job"],
        "properties": {
            "event": {"type": "string"},
            "duplicate": {"type": "boolean", "description": "true: this event id was already received; nothing done"},
            "products": {"type": "integer", "description": "Distinct product ids a job will refresh (0 if duplicate)"},
            "fan_out_job": {"type": ["string", "null"], "description": "The job enqueueing the product jobs"},
        },
    }
    return {
        "post": {
            "operationId": "receiveSupplierWebhook",
            "summary": "Supplier event (signed): record it once, refresh the products it names",
            "description": "Signed with HMAC-SHA256 over `<t>.<body>` with SUPPLIER_WEBHOOK_SECRET; deliveries older "
            "than SUPPLIER_WEBHOOK_TOLERANCE_SECONDS are refused. At most SUPPLIER_WEBHOOK_MAX_PRODUCT_IDS ids per "
            "event. The request records the event and one fan-out job; that job enqueues one `sync.fetch_product` "
            "job per distinct id.",
            "security": [],
            "parameters": [{"name": "X-Supplier-Signature", "in": "header", "required": True,
                            "schema": {"type": "string"}, "description": SIGNATURE_FORMAT}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": webhook_event_schema()}}},
            "responses": {
                "202": {"description": "Recorded; the fan-out job was enqueued",
                        "content": {"application/json": {"schema": outcome}}},
                "200": {"description": "A redelivery of an event already recorded",
                        "content": {"application/json": {"schema": outcome}}},
                **{str(status): _error(status) for status in (400, 401, 413, 422, 500, 503)},
            },
        }
    }  # fmt: skip
