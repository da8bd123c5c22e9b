import pytest

import tests.jobs.jobtypes  # noqa: F401 - registers the test job types in this process too
from jobs.core import registry
from jobs.core.registry import JobType


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="pw")


@pytest.fixture
def staff(django_user_model):
    """An operator: staff, with the job permissions the admin and the API check (view, cancel, add)."""
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("ops", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="jobs", content_type__model="job",
                                                         codename__in=["view_job", "cancel_job", "add_job"]))  # fmt: skip
    return user


ECHO_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["email"],
    "properties": {
        "email": {"type": "string", "minLength": 3},
        "count": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}


@pytest.fixture
def echo_type(monkeypatch):
    """An API type anyone may enqueue (the built-in canary is staff-only)."""
    spec = JobType(name="tests.api_echo", handler=lambda ctx, payload: payload, api_schema=ECHO_SCHEMA)
    monkeypatch.setitem(registry._registry, spec.name, spec)
    return spec


@pytest.fixture(params=["server-side", "client-side"])
def parameter_binding(request, transactional_db):
    """Run the test on each way PostgreSQL connections can bind parameters: on the server with prepared
    statements (the default) and on the client (DATABASE_PREPARED_STATEMENTS=0, for old connection poolers).
    Connections are reopened with the chosen options, so the test must not run inside a transaction."""
    from django.conf import settings
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip(
            "server- vs client-side parameter binding is a PostgreSQL connection option; SQLite has one binding"
        )
    options = connection.settings_dict.setdefault("OPTIONS", {})
    saved = dict(options)
    connection.close()
    options.pop("server_side_binding", None)
    options.pop("prepare_threshold", None)
    if request.param == "server-side":
        options.update(server_side_binding=True, prepare_threshold=settings.PREPARED_STATEMENT_THRESHOLD)
    try:
        yield request.param
    finally:
        connection.close()
        options.clear()
        options.update(saved)
