from django.http import HttpRequest, JsonResponse

from jobs.public import ApiError, api_view

from .services import WebhookRejected, webhook_accept


@api_view(methods=("POST",))
def supplier_webhook(request: HttpRequest) -> JsonResponse:
    """Signed supplier events: verified, recorded once, fanned out to product jobs; answers fast."""
    try:
        outcome = webhook_accept(body=request.body, signature_header=request.headers.get("X-Supplier-Signature", ""))
    except WebhookRejected as rejected:
        raise ApiError(rejected.message, code=rejected.code, status=rejected.status) from None
    if outcome.duplicate:
        return JsonResponse({"event": outcome.event_id, "duplicate": True, "jobs": 0}, status=200)
    return JsonResponse({"event": outcome.event_id, "duplicate": False, "jobs": outcome.jobs_enqueued}, status=202)
