from django.http import HttpRequest, JsonResponse

from jobs.public import ApiError, api_view

from .services import WebhookRejected, webhook_accept


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
