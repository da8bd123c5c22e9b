"""A stand-in for the supplier's catalog API: a real HTTP server with a real rate limit and real faults.

    python -m sync.simulator --port 8100 --size 200000 --rate-limit 60 --rate-period 60
    python manage.py supplier_simulator ...          (the same, from Django)

Endpoints (JSON):
    GET  /products?page=N&page_size=M   {"page", "page_size", "total", "total_pages", "products": [...]}
    GET  /products/<id>                 one product, or 404
    POST /_sim/config                   change any option at run time (partial JSON)
    GET  /_sim/stats                    request counts, 429s, 5xx, per-page fetches, request times
    GET  /_sim/config                   the current options
    POST /_sim/reset                    clear stats and the rate-limit window ({"config": true}: options too)

The catalog is computed from each product's index (never held in memory), so it is the
same on every run; ``catalog_version`` changes every 1000th product; lowering ``size``
makes products disappear. Faults are deterministic for a given ``seed``. Standard library
only, so it runs as a plain process beside the stack.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import math
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlparse

ID_PREFIX = "SUP-"
MAX_PAGE_SIZE = 1000
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


# What a simulator option holds: a flag, a count or rate, a string, or page -> forced failures.
OptionValue = bool | int | float | str | dict[str, int]


@dataclass
class SimulatorConfig:
    size: int = 200_000
    page_size: int = 100
    rate_limit: int = 60  # requests per rate_period; 0 = unlimited
    rate_period: float = 60.0
    api_key: str = ""
    catalog_version: int = 1
    seed: int = 1
    latency_ms: int = 0
    error_rate: float = 0.0  # share of requests answered 500/503
    timeout_rate: float = 0.0  # share of requests that stall for timeout_sleep_s
    timeout_sleep_s: float = 30.0
    malformed_rate: float = 0.0  # share of records that fail validation
    fail_pages: dict[str, int] = field(default_factory=dict)  # page -> answer 503 this many times first
    verbose: bool = False

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial change; all of it or, on a bad option or value, none of it (ValueError)."""
        if not isinstance(changes, dict):
            raise ValueError("expected a JSON object of options")
        known = asdict(self)
        coerced = {}
        for key, value in changes.items():
            if key not in known:
                raise ValueError(f"unknown option {key!r}; known: {', '.join(sorted(known))}")
            coerced[key] = _coerce(key, value, known[key])
        for key, value in coerced.items():
            setattr(self, key, value)


def _coerce(key: str, value: Any, current: OptionValue) -> OptionValue:
    """``value`` as the type of the option's current value (JSON and the CLI both send loose types)."""
    if isinstance(current, bool):
        if isinstance(value, str) and value.lower() in {"true", "false", "1", "0"}:
            return value.lower() in {"true", "1"}
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false, got {value!r}")
        return value
    if isinstance(current, dict):
        if isinstance(value, str):
            value = json.loads(value or "{}")
        if not isinstance(value, dict):
            raise ValueError(f'{key} must be an object like {{"7": 3}}, got {value!r}')
        return {str(int(page)): int(times) for page, times in value.items()}
    if isinstance(current, str):
        return "" if value is None else str(value)
    number = type(current)(value)
    if number < 0 or (key.endswith("_rate") and number > 1):
        raise ValueError(f"{key} out of range: {value!r}")
    return number


def _fraction(*parts: object) -> float:
    """A deterministic number in [0, 1) from the parts."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def product_id(index: int) -> str:
    return f"{ID_PREFIX}{index:07d}"


def make_product(index: int, config: SimulatorConfig) -> dict[str, Any]:
    """Product ``index`` (1-based) as the supplier serves it under this configuration."""
    changed = config.catalog_version > 1 and index % 1000 == 0
    cents = 100 + (index * 7919) % 99_900 + (config.catalog_version * 100 if changed else 0)
    updated = (
        EPOCH
        + timedelta(minutes=index % 100_000)
        + (timedelta(days=config.catalog_version) if changed else timedelta())
    )
    product = {
        "id": product_id(index),
        "sku": f"SKU-{index * 31 % 10_000_000:07d}",
        "name": f"Product {index}",
        "description": f"Deterministic product number {index} of the simulated supplier catalog.",
        "price": f"{cents // 100}.{cents % 100:02d}",
        "currency": "EUR",
        "stock": (index * 13) % 500,
        "active": index % 97 != 0,
        "updated_at": updated.isoformat().replace("+00:00", "Z"),
    }
    if config.malformed_rate and _fraction(config.seed, "malformed", index) < config.malformed_rate:
        flaw = index % 3
        if flaw == 0:
            product["price"] = "twelve euros"
        elif flaw == 1:
            product["stock"] = -5
        else:
            del product["name"]
    return product


class SimulatorState:
    def __init__(self, config: SimulatorConfig):
        self.config = config
        self.initial = asdict(config)
        self.lock = threading.Lock()
        self.reset()

    def reset(self, *, config: bool = False) -> None:
        with self.lock:
            if config:
                self.config.update(self.initial)
            self.window: collections.deque[float] = collections.deque()
            self.requests = 0
            self.served = 0
            self.rate_limited = 0
            self.server_errors = 0
            self.timeouts = 0
            self.page_fetches: collections.Counter[int] = collections.Counter()
            self.page_failures: collections.Counter[str] = collections.Counter()
            self.request_times: collections.deque[float] = collections.deque(maxlen=100_000)
            # (time, Retry-After seconds) of every 429 sent, to check clients honour the pause.
            self.refusals: collections.deque[tuple[float, int]] = collections.deque(maxlen=10_000)

    def admit(self) -> tuple[int, int]:
        """Record a request: (its number, 0) within the rate limit, else (number, Retry-After seconds).

        The number is taken under the lock so that faults, drawn from (seed, number), hit the
        same share of requests however many threads serve them.
        """
        now = time.time()
        with self.lock:
            self.requests += 1
            number = self.requests
            self.request_times.append(now)
            limit, period = self.config.rate_limit, self.config.rate_period
            if limit <= 0:
                return number, 0
            # Sliding window: a slot frees exactly ``period`` after the request that took it.
            while self.window and self.window[0] <= now - period:
                self.window.popleft()
            if len(self.window) < limit:
                self.window.append(now)
                return number, 0
            self.rate_limited += 1
            retry_after = max(1, math.ceil(self.window[0] + period - now))
            self.refusals.append((now, retry_after))
            return number, retry_after

    def count(self, counter: str) -> None:
        with self.lock:
            setattr(self, counter, getattr(self, counter) + 1)

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": self.requests, "served": self.served, "rate_limited": self.rate_limited,
                "server_errors": self.server_errors, "timeouts": self.timeouts,
                "page_fetches": {str(page): count for page, count in sorted(self.page_fetches.items())},
                "page_failures": dict(sorted(self.page_failures.items(), key=lambda item: int(item[0]))),
                "request_times": list(self.request_times),
                "refusals": [{"at": at, "retry_after": retry_after} for at, retry_after in self.refusals],
            }  # fmt: skip


class Handler(BaseHTTPRequestHandler):
    server_version = "SupplierSimulator/1"
    state: SimulatorState  # set on the subclass made by make_server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if self.state.config.verbose:
            super().log_message(format, *args)

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, Any] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, status: int, message: str, headers: dict[str, Any] | None = None) -> None:
        self._send(status, {"error": message}, headers)

    # Control endpoints: never limited, never faulty.
    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        path = urlparse(self.path).path
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if path == "/_sim/reset":
                self.state.reset(config=bool(isinstance(body, dict) and body.get("config")))
                return self._send(200, {"reset": True, "config": asdict(self.state.config)})
            if path == "/_sim/config":
                with self.state.lock:
                    self.state.config.update(body)
                return self._send(200, asdict(self.state.config))
        except (ValueError, TypeError) as exc:
            return self._error(400, str(exc))
        return self._error(404, f"no such endpoint: POST {path}")

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        url = urlparse(self.path)
        if url.path == "/_sim/stats":
            return self._send(200, self.state.stats())
        if url.path == "/_sim/config":
            return self._send(200, asdict(self.state.config))
        config, state = self.state.config, self.state
        if config.api_key and self.headers.get("Authorization") != f"Bearer {config.api_key}":
            return self._error(401, "missing or wrong API key")
        request_number, retry_after = state.admit()
        if retry_after:
            return self._error(429, "rate limit exceeded", {"Retry-After": str(retry_after)})
        if config.latency_ms:
            time.sleep(config.latency_ms / 1000)
        if config.timeout_rate and _fraction(config.seed, "timeout", request_number) < config.timeout_rate:
            state.count("timeouts")
            time.sleep(config.timeout_sleep_s)
        if config.error_rate and _fraction(config.seed, "error", request_number) < config.error_rate:
            state.count("server_errors")
            if request_number % 2:
                return self._error(503, "temporarily unavailable", {"Retry-After": "1"})
            return self._error(500, "internal error")
        if url.path == "/products":
            return self._page(parse_qs(url.query))
        if url.path.startswith("/products/"):
            return self._product(url.path.removeprefix("/products/"))
        return self._error(404, f"no such endpoint: GET {url.path}")

    def _page(self, query: dict[str, Any]) -> None:
        config, state = self.state.config, self.state
        try:
            page = int(query.get("page", ["1"])[0])
            page_size = int(query.get("page_size", [str(config.page_size)])[0])
        except ValueError:
            return self._error(400, "page and page_size must be integers")
        if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
            return self._error(400, f"page must be >= 1 and page_size between 1 and {MAX_PAGE_SIZE}")
        key = str(page)
        with state.lock:
            if state.page_failures[key] < config.fail_pages.get(key, 0):
                state.page_failures[key] += 1
                state.server_errors += 1
                failing = True
            else:
                failing = False
        if failing:
            return self._error(503, f"page {page} is failing (injected)", {"Retry-After": "1"})
        start = (page - 1) * page_size + 1
        end = min(config.size, start + page_size - 1)
        products = [make_product(index, config) for index in range(start, end + 1)]
        with state.lock:
            state.served += 1
            state.page_fetches[page] += 1
        self._send(200, {
            "page": page, "page_size": page_size, "total": config.size,
            "total_pages": math.ceil(config.size / page_size), "products": products,
        })  # fmt: skip

    def _product(self, raw_id: str) -> None:
        config = self.state.config
        try:
            index = int(raw_id.removeprefix(ID_PREFIX)) if raw_id.startswith(ID_PREFIX) else 0
        except ValueError:
            index = 0
        if not 1 <= index <= config.size:
            return self._error(404, f"no product {raw_id!r}")
        self.state.count("served")
        self._send(200, make_product(index, config))


def make_server(config: SimulatorConfig, *, host: str = "127.0.0.1", port: int = 8100) -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"state": SimulatorState(config)})
    server_class = type("SimulatorServer", (ThreadingHTTPServer,), {
        # Many workers connect at once; the default backlog of 5 drops SYNs, which clients
        # retry only after a second, and that shows up as lost throughput in the benchmark.
        "request_queue_size": 256,
        # A request stalled by timeout_rate must not hold up shutdown.
        "daemon_threads": True,
    })  # fmt: skip
    server: ThreadingHTTPServer = server_class((host, port), handler)
    return server


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = SimulatorConfig()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--size", type=int, default=defaults.size, help="products in the catalog")
    parser.add_argument("--page-size", type=int, default=defaults.page_size)
    parser.add_argument(
        "--rate-limit", type=int, default=defaults.rate_limit, help="requests per --rate-period (0: none)"
    )
    parser.add_argument("--rate-period", type=float, default=defaults.rate_period, help="seconds")
    parser.add_argument("--api-key", default="", help="require 'Authorization: Bearer KEY'")
    parser.add_argument("--catalog-version", type=int, default=defaults.catalog_version,
                        help="above 1, every 1000th product has a new price and updated_at")  # fmt: skip
    parser.add_argument("--seed", type=int, default=defaults.seed, help="makes the faults below reproducible")
    parser.add_argument("--latency-ms", type=int, default=defaults.latency_ms, help="added to every response")
    parser.add_argument("--error-rate", type=float, default=defaults.error_rate, help="share answered 500/503")
    parser.add_argument("--timeout-rate", type=float, default=defaults.timeout_rate,
                        help="share that stall for --timeout-sleep-s before answering")  # fmt: skip
    parser.add_argument("--timeout-sleep-s", type=float, default=defaults.timeout_sleep_s)
    parser.add_argument("--malformed-rate", type=float, default=defaults.malformed_rate, help="share of bad records")
    parser.add_argument(
        "--fail-pages", default="{}", help="JSON: page -> 503s before it succeeds, e.g. '{\"7\": 1000}'"
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    config = SimulatorConfig()
    config.update({name: getattr(args, name) for name in asdict(config) if hasattr(args, name)})
    return config


def serve(config: SimulatorConfig, *, host: str, port: int) -> None:
    server = make_server(config, host=host, port=port)

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"supplier simulator on http://{host}:{server.server_address[1]}/ ({config.size} products, "
          f"{config.rate_limit or 'no'} requests per {config.rate_period:g}s)", flush=True)  # fmt: skip
    server.serve_forever(poll_interval=0.2)
    server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sync.simulator", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except (ValueError, TypeError) as exc:
        parser.error(str(exc))
    serve(config, host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
