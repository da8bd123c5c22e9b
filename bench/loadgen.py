"""Open-loop HTTP load generator for bench api (run as its own process; standard library only).

    python -m bench.loadgen SPEC.json      # prints one JSON object: latencies and errors

SPEC: ``{"host", "port", "rate", "seconds", "method", "paths": [...], "headers": {...},
"body": "..." or null, "unique_header": name or null, "max_connections": 256}``.

Request ``i`` is due at ``start + i / rate`` whatever happened to earlier ones (a fixed
arrival rate, not a fixed number of clients), and its latency runs from that due time to
the last byte of the response: a slow server shows up as queueing here instead of being
hidden by a client that waits before sending more. Paths are taken in turn; with
``unique_header`` each request carries a fresh UUID in that header.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from typing import Any


async def _request(host: str, port: int, raw: bytes) -> int:
    """Send one request on a fresh connection and read the whole response; return its status."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(raw)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        if length is not None:
            await reader.readexactly(length)
        else:
            await reader.read()
        return status
    finally:
        writer.close()


def _raw(spec: dict[str, Any], path: str) -> bytes:
    headers = {"Host": f"{spec['host']}:{spec['port']}", "Connection": "close", **spec.get("headers", {})}
    if spec.get("unique_header"):
        headers[spec["unique_header"]] = str(uuid.uuid4())
    body = (spec.get("body") or "").encode()
    if body:
        headers["Content-Length"] = str(len(body))
    lines = [f"{spec['method']} {path} HTTP/1.1", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    rate, seconds, paths = float(spec["rate"]), float(spec["seconds"]), spec["paths"]
    total = int(rate * seconds)
    limit = asyncio.Semaphore(int(spec.get("max_connections", 256)))
    latencies: list[float] = []
    errors: dict[str, int] = {}

    async def one(index: int, due: float) -> None:
        raw = _raw(spec, paths[index % len(paths)])
        async with limit:
            try:
                status = await asyncio.wait_for(_request(spec["host"], spec["port"], raw), timeout=30)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                errors[exc.__class__.__name__] = errors.get(exc.__class__.__name__, 0) + 1
                return
        latencies.append(time.perf_counter() - due)
        if status >= 400:
            errors[f"HTTP {status}"] = errors.get(f"HTTP {status}", 0) + 1

    cpu_before = time.process_time()
    start = time.perf_counter() + 0.05
    tasks = []
    for index in range(total):
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    # Its own CPU per request: the generator shares the machine's cores with the server it measures.
    loadgen_cpu_ms = (time.process_time() - cpu_before) * 1000 / max(1, total)
    return {"sent": total, "elapsed": elapsed, "latencies_ms": [value * 1000 for value in latencies], "errors": errors,
            "loadgen_cpu_ms": loadgen_cpu_ms}  # fmt: skip


def main(argv: list[str]) -> int:
    with open(argv[0]) as handle:
        spec = json.load(handle)
    print(json.dumps(asyncio.run(run(spec))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
