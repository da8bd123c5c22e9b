import pytest

import tests.jobs.jobtypes  # noqa: F401 - registers the test job types in this process too
from jobs import registry
from jobs.registry import JobType


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
