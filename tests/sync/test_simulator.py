"""The supplier simulator over real HTTP: catalog, rate limit, faults, control endpoints, process life."""

import json
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from sync.simulator import SimulatorConfig, make_product
from tests.processes import wait_for


def get(url: str, *, headers=None, timeout=5):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def post(url: str, body: dict):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# Catalog


def test_pages_are_deterministic_and_complete(supplier_simulator):
    sim = supplier_simulator(size=250, rate_limit=0)

    status, _, first = get(f"{sim.url}/products?page=1&page_size=100")
    _, _, again = get(f"{sim.url}/products?page=1&page_size=100")
    _, _, last = get(f"{sim.url}/products?page=3&page_size=100")
    _, _, beyond = get(f"{sim.url}/products?page=4&page_size=100")

    assert status == 200 and first == again
    assert (first["total"], first["total_pages"], len(first["products"])) == (250, 3, 100)
    assert first["products"][0]["id"] == "SUP-0000001" and last["products"][-1]["id"] == "SUP-0000250"
    assert len(last["products"]) == 50 and beyond["products"] == []
    product = first["products"][0]
    assert set(product) == {"id", "sku", "name", "description", "price", "currency", "stock", "active", "updated_at"}
    assert product["updated_at"].endswith("Z") and product["price"].split(".")[1].isdigit()


def test_page_size_defaults_to_100_and_is_capped(supplier_simulator):
    sim = supplier_simulator(size=2500, rate_limit=0)
    assert get(f"{sim.url}/products")[2]["page_size"] == 100
    assert get(f"{sim.url}/products?page_size=1000")[2]["total_pages"] == 3
    assert get(f"{sim.url}/products?page_size=1001")[0] == 400
    assert get(f"{sim.url}/products?page=0")[0] == 400


def test_single_product_and_404(supplier_simulator):
    sim = supplier_simulator(size=10, rate_limit=0)
    assert get(f"{sim.url}/products/SUP-0000007")[2] == make_product(7, SimulatorConfig(size=10))
    status, _, body = get(f"{sim.url}/products/SUP-0000011")
    assert status == 404 and "error" in body
    assert get(f"{sim.url}/products/nonsense")[0] == 404


def test_catalog_version_changes_only_every_thousandth_product():
    v1, v2 = SimulatorConfig(catalog_version=1), SimulatorConfig(catalog_version=2)
    changed = [i for i in range(1, 3001) if make_product(i, v1) != make_product(i, v2)]
    assert changed == [1000, 2000, 3000]


def test_a_new_catalog_version_over_http_changes_price_and_updated_at_only(supplier_simulator):
    sim = supplier_simulator(size=2000, rate_limit=0)
    before = get(f"{sim.url}/products?page_size=1000")[2]["products"]
    sim.configure(catalog_version=2)
    after = get(f"{sim.url}/products?page_size=1000")[2]["products"]

    differing = [
        (old["id"], {k for k in old if old[k] != new[k]}) for old, new in zip(before, after, strict=True) if old != new
    ]
    assert differing == [("SUP-0001000", {"price", "updated_at"})]
    assert after[-1]["updated_at"] > before[-1]["updated_at"]


def test_size_can_shrink_at_run_time(supplier_simulator):
    sim = supplier_simulator(size=100, rate_limit=0)
    sim.configure(size=40)
    assert get(f"{sim.url}/products?page_size=100")[2]["total"] == 40
    assert get(f"{sim.url}/products/SUP-0000041")[0] == 404
    assert sim.stats()["page_fetches"] == {"1": 1}


# Access and rate limit


def test_api_key_is_required_when_set_but_not_for_control_endpoints(supplier_simulator):
    sim = supplier_simulator(size=10, rate_limit=0, api_key="k")
    assert get(f"{sim.url}/products")[0] == 401
    assert get(f"{sim.url}/products", headers={"Authorization": "Bearer wrong"})[0] == 401
    assert get(f"{sim.url}/products", headers={"Authorization": "Bearer k"})[0] == 200
    assert sim.stats()["served"] == 1


def test_rate_limit_answers_429_with_a_retry_after_that_is_enough(supplier_simulator):
    sim = supplier_simulator(size=10, rate_limit=3, rate_period=1)

    statuses = [get(f"{sim.url}/products")[0] for _ in range(3)]
    status, headers, body = get(f"{sim.url}/products")
    refused_at = time.monotonic()

    assert statuses == [200, 200, 200] and status == 429
    assert headers["Retry-After"] == "1" and body == {"error": "rate limit exceeded"}
    stats = sim.stats()  # control endpoints are not limited
    assert (stats["requests"], stats["served"], stats["rate_limited"]) == (4, 3, 1)
    assert [r["retry_after"] for r in stats["refusals"]] == [1]
    assert len(stats["request_times"]) == 4 and stats["request_times"] == sorted(stats["request_times"])

    # Waiting exactly Retry-After is enough: the header is rounded up, never down.
    wait_for(lambda: time.monotonic() >= refused_at + int(headers["Retry-After"]), timeout=2, interval=0.02)
    assert get(f"{sim.url}/products")[0] == 200


def test_reset_clears_counts_and_the_window_but_keeps_the_config_unless_asked(supplier_simulator):
    sim = supplier_simulator(size=10, rate_limit=1, rate_period=60)
    sim.configure(size=5)
    assert [get(f"{sim.url}/products")[0] for _ in range(2)] == [200, 429]

    sim.reset()
    assert get(f"{sim.url}/products")[2]["total"] == 5  # window cleared, config kept
    stats = sim.stats()
    assert (stats["requests"], stats["rate_limited"], len(stats["request_times"])) == (1, 0, 1)

    assert sim.reset(config=True)["config"]["size"] == 10
    assert get(f"{sim.url}/products")[2]["total"] == 10


def test_bad_config_is_refused_whole(supplier_simulator):
    sim = supplier_simulator(size=10, rate_limit=0)
    assert post(f"{sim.url}/_sim/config", {"size": 3, "no_such_option": 1})[0] == 400
    assert post(f"{sim.url}/_sim/config", {"size": 3, "error_rate": 2})[0] == 400
    assert post(f"{sim.url}/_sim/config", {"verbose": "maybe"})[0] == 400
    assert get(f"{sim.url}/_sim/config")[2]["size"] == 10


# Faults


def test_failing_pages_and_error_injection(supplier_simulator):
    sim = supplier_simulator(size=300, rate_limit=0, fail_pages={"3": 1000})
    sim.configure(fail_pages={"2": 2, "3": 1000})

    assert [get(f"{sim.url}/products?page=2")[0] for _ in range(3)] == [503, 503, 200]
    status, headers, _ = get(f"{sim.url}/products?page=3")
    assert status == 503 and headers["Retry-After"] == "1"
    sim.configure(error_rate=1.0)
    assert get(f"{sim.url}/products?page=1")[0] in {500, 503}

    stats = sim.stats()
    assert stats["server_errors"] == 4 and stats["page_failures"] == {"2": 2, "3": 1}
    assert stats["page_fetches"] == {"2": 1}


def test_errors_are_reproducible_for_a_seed(supplier_simulator):
    sim = supplier_simulator(size=10, rate_limit=0, error_rate=0.5, seed=7)
    first = [get(f"{sim.url}/products")[0] for _ in range(30)]
    sim.reset()
    again = [get(f"{sim.url}/products")[0] for _ in range(30)]

    assert first == again and {200, 500, 503} <= set(first)
    assert sim.stats()["server_errors"] == sum(status != 200 for status in again)


def test_malformed_records_are_injected_deterministically_per_product(supplier_simulator):
    sim = supplier_simulator(size=200, rate_limit=0, malformed_rate=0.2)
    products = get(f"{sim.url}/products?page=1&page_size=200")[2]["products"]
    broken = [p["id"] for p in products
              if "name" not in p or p["stock"] < 0 or not p["price"].replace(".", "").isdigit()]  # fmt: skip

    assert 20 <= len(broken) <= 60
    # The same products are broken however the catalog is paged.
    second_half = get(f"{sim.url}/products?page=2&page_size=100")[2]["products"]
    assert second_half == products[100:]


def test_timeouts_stall_the_response(supplier_simulator):
    sim = supplier_simulator(size=10, rate_limit=0, timeout_sleep_s=2.0)
    sim.configure(timeout_rate=1.0)
    started = time.monotonic()
    try:
        get(f"{sim.url}/products", timeout=0.5)
        raised = False
    except TimeoutError:
        raised = True
    assert raised and time.monotonic() - started < 1.5
    assert sim.stats()["timeouts"] == 1


def test_latency_is_added_to_each_response(supplier_simulator):
    sim = supplier_simulator(size=10, rate_limit=0, latency_ms=300)
    started = time.monotonic()
    assert get(f"{sim.url}/products")[0] == 200
    assert time.monotonic() - started >= 0.3


# The process


def test_concurrent_clients_are_all_served(supplier_simulator):
    sim = supplier_simulator(size=200_000, rate_limit=0)
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda page: get(f"{sim.url}/products?page={page}")[0], range(1, 401)))
    assert statuses == [200] * 400
    assert sum(sim.stats()["page_fetches"].values()) == 400


def test_management_command_serves_and_stops_cleanly_on_sigterm(supplier_simulator):
    sim = supplier_simulator(command=[sys.executable, "manage.py", "supplier_simulator"], size=5, rate_limit=0,
                             fail_pages={"1": 1})  # fmt: skip
    assert get(f"{sim.url}/products")[0] == 503
    assert get(f"{sim.url}/products")[2]["total"] == 5
    assert sim.stop() == 0
