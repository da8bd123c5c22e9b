"""The supplier simulator over real HTTP: catalog, rate limit, faults."""

import json
import time
import urllib.error
import urllib.request

from sync.simulator import SimulatorConfig, make_product


def get(url: str, *, headers=None, timeout=5):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def test_pages_are_deterministic_and_complete(supplier_simulator):
    sim = supplier_simulator(size=250, rate_limit=0)

    status, _, first = get(f"{sim.url}/products?page=1&page_size=100")
    _, _, again = get(f"{sim.url}/products?page=1&page_size=100")
    _, _, last = get(f"{sim.url}/products?page=3&page_size=100")
    _, _, beyond = get(f"{sim.url}/products?page=4&page_size=100")

    assert status == 200 and first == again
    assert (first["total"], first["total_pages"], len(first["products"])) == (250, 3, 100)
    assert first["products"][0]["id"] == "SUP-0000001" and len(last["products"]) == 50
    assert beyond["products"] == []


def test_single_product_and_404(supplier_simulator):
    sim = supplier_simulator(size=10, rate_limit=0)
    assert get(f"{sim.url}/products/SUP-0000007")[2]["name"] == "Product 7"
    assert get(f"{sim.url}/products/SUP-0000011")[0] == 404


def test_catalog_version_changes_only_every_thousandth_product():
    v1, v2 = SimulatorConfig(catalog_version=1), SimulatorConfig(catalog_version=2)
    changed = [i for i in range(1, 3001) if make_product(i, v1) != make_product(i, v2)]
    assert changed == [1000, 2000, 3000]


def test_api_key_is_required_when_set(supplier_simulator):
    sim = supplier_simulator(size=10, rate_limit=0, api_key="k")
    assert get(f"{sim.url}/products")[0] == 401
    assert get(f"{sim.url}/products", headers={"Authorization": "Bearer k"})[0] == 200


def test_rate_limit_answers_429_with_retry_after(supplier_simulator):
    sim = supplier_simulator(size=10, rate_limit=3, rate_period=2)

    statuses = [get(f"{sim.url}/products")[0] for _ in range(4)]
    status, headers, body = get(f"{sim.url}/products")

    assert statuses == [200, 200, 200, 429] and status == 429
    assert 1 <= int(headers["Retry-After"]) <= 2 and body == {"error": "rate limit exceeded"}
    stats = sim.stats()
    assert (stats["requests"], stats["served"], stats["rate_limited"]) == (5, 3, 2)
    time.sleep(2.05)
    assert get(f"{sim.url}/products")[0] == 200


def test_failing_page_and_error_injection(supplier_simulator):
    sim = supplier_simulator(size=300, rate_limit=0)
    sim.configure(fail_pages={"2": 2})

    assert [get(f"{sim.url}/products?page=2")[0] for _ in range(3)] == [503, 503, 200]
    sim.configure(error_rate=1.0)
    assert get(f"{sim.url}/products?page=1")[0] in {500, 503}
    assert sim.stats()["server_errors"] == 3


def test_malformed_records_are_injected_deterministically(supplier_simulator):
    sim = supplier_simulator(size=200, rate_limit=0, malformed_rate=0.2)
    products = get(f"{sim.url}/products?page=1&page_size=200")[2]["products"]
    broken = [p for p in products if "name" not in p or p["stock"] < 0 or not p["price"].replace(".", "").isdigit()]
    assert 20 <= len(broken) <= 60
    assert products == get(f"{sim.url}/products?page=1&page_size=200")[2]["products"]


def test_timeouts_stall_the_response(supplier_simulator):
    sim = supplier_simulator(size=10, rate_limit=0)
    sim.configure(timeout_rate=1.0, timeout_sleep_s=2.0)
    started = time.monotonic()
    try:
        get(f"{sim.url}/products", timeout=0.5)
        raised = False
    except TimeoutError:
        raised = True
    assert raised and time.monotonic() - started < 1.5


def test_size_can_shrink_at_run_time(supplier_simulator):
    sim = supplier_simulator(size=100, rate_limit=0)
    sim.configure(size=40)
    assert get(f"{sim.url}/products?page_size=100")[2]["total"] == 40
    assert sim.stats()["page_fetches"] == {"1": 1}
