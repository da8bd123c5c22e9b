import pytest
from django.test import override_settings


@pytest.mark.django_db
def test_healthz_ok_when_database_and_broker_answer(client, redis_client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok", "checks": {"database": "ok", "broker": "ok", "workers_database": "ok"}
    }  # fmt: skip


@pytest.mark.django_db
def test_healthz_503_names_the_broker_when_redis_is_down(client, embedded_redis_factory):
    server = embedded_redis_factory()
    with override_settings(CELERY_BROKER_URL=server.url):
        assert client.get("/healthz").status_code == 200
        server.stop()
        response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith(f"broker unreachable at {server.url}")


@pytest.mark.django_db
def test_healthz_reports_the_broker_back_after_an_outage(client, embedded_redis_factory):
    # The probe keeps its broker connection between requests; the outage must show, and so must the recovery.
    server = embedded_redis_factory()
    with override_settings(CELERY_BROKER_URL=server.url):
        assert client.get("/healthz").status_code == 200
        server.stop()
        assert client.get("/healthz").status_code == 503
        server.start()  # the same port again
        assert client.get("/healthz").status_code == 200
