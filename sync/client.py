"""The supplier API client: timeouts on every request, the shared limiter, errors the retry policy understands."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings

from jobs.public import RateLimiter, parse_retry_after

from .exceptions import SupplierPermanentError, SupplierRateLimited, SupplierTransientError

# When a 503 carries no Retry-After, pause everyone this long before trying again.
DEFAULT_PAUSE_SECONDS = 5.0


@dataclass(frozen=True)
class SupplierResponse:
    status: int
    body: dict[str, Any] | None


class SupplierClient:
    """Talks to the supplier (or the simulator: same contract), one request per limiter slot.

    - connect and read timeouts on every request, never infinite;
    - every request first takes a slot of the shared ``supplier-api`` limiter; when none is
      free soon, ``RateLimited`` postpones the job instead of blocking a worker;
    - 429 and 503 pause the limiter for everyone for Retry-After; a 429 then postpones the job
      (SupplierRateLimited, no attempt spent), a 503 counts as a transient failure;
    - timeouts, connection errors and 5xx raise SupplierTransientError (retried with backoff);
      other 4xx raise SupplierPermanentError (not retried).
    """

    def __init__(self, *, base_url: str | None = None, api_key: str | None = None, limiter: RateLimiter | None = None,
                 connect_timeout: float | None = None, read_timeout: float | None = None, max_wait: float = 2.0):  # fmt: skip
        url = urlsplit(base_url or settings.SUPPLIER_API_URL)
        if url.scheme not in {"http", "https"} or not url.hostname:
            raise ValueError(f"SUPPLIER_API_URL must be an http(s) URL, got {base_url or settings.SUPPLIER_API_URL!r}")
        self.scheme, self.host, self.port, self.base_path = url.scheme, url.hostname, url.port, url.path.rstrip("/")
        self.api_key = settings.SUPPLIER_API_KEY if api_key is None else api_key
        self.limiter = limiter or RateLimiter.named("supplier-api")
        self.connect_timeout = connect_timeout or settings.SUPPLIER_CONNECT_TIMEOUT
        self.read_timeout = read_timeout or settings.SUPPLIER_READ_TIMEOUT
        self.max_wait = max_wait

    def fetch_page(self, *, page: int, page_size: int) -> dict[str, Any]:
        response = self._get("/products", {"page": page, "page_size": page_size})
        body = response.body or {}
        if not isinstance(body.get("products"), list) or not isinstance(body.get("total_pages"), int):
            raise SupplierTransientError(f"supplier page {page} came back without 'products'/'total_pages'")
        return body

    def fetch_product(self, *, supplier_id: str) -> dict[str, Any] | None:
        """The product, or None when the supplier no longer has it (404)."""
        response = self._get(f"/products/{supplier_id}", {}, allow_not_found=True)
        return response.body if response.status == 200 else None

    def _get(self, path: str, query: dict[str, Any], *, allow_not_found: bool = False) -> SupplierResponse:
        self.limiter.acquire(max_wait=self.max_wait)
        target = f"{self.base_path}{path}" + (f"?{urlencode(query)}" if query else "")
        connection_class = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        connection = connection_class(self.host, self.port, timeout=self.connect_timeout)
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        try:
            connection.connect()
            connection.sock.settimeout(self.read_timeout)
            connection.request("GET", target, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        except TimeoutError as exc:
            raise SupplierTransientError(f"supplier GET {target} timed out ({exc})") from exc
        except (ConnectionError, OSError, http.client.HTTPException) as exc:
            raise SupplierTransientError(f"supplier GET {target} failed: {exc.__class__.__name__}: {exc}") from exc
        finally:
            connection.close()
        status = response.status
        if status in (429, 503):
            retry_after = parse_retry_after(response.getheader("Retry-After"))
            pause = retry_after if retry_after is not None else DEFAULT_PAUSE_SECONDS
            # "Not before": every worker waits, so nobody sends during the pause.
            self.limiter.pause_for(pause)
            if status == 429:
                # Our pace, not this request's fault: postpone without spending an attempt.
                raise SupplierRateLimited(
                    f"supplier answered 429 for GET {target}; everyone pauses {pause:.0f}s",
                    wait_seconds=pause, detail={"status": status, "retry_after": retry_after},
                )  # fmt: skip
            # 503 may be about this request (a page that keeps failing): spend an attempt,
            # so it ends in the dead-letter queue rather than being postponed for ever.
            raise SupplierTransientError(f"supplier answered 503 for GET {target} (retry after {pause:.0f}s)")
        if status >= 500:
            raise SupplierTransientError(f"supplier answered {status} for GET {target}")
        if status == 404 and allow_not_found:
            return SupplierResponse(status=404, body=None)
        if status >= 400:
            raise SupplierPermanentError(f"supplier refused GET {target} with {status}: {raw[:200]!r}")
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise SupplierTransientError(f"supplier sent invalid JSON for GET {target}: {exc}") from exc
        return SupplierResponse(status=status, body=body)
