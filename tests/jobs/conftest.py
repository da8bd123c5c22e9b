import pytest

import tests.jobs.jobtypes  # noqa: F401 - registers the test job types in this process too


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
