from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from sync.models import Product

SLOW = "tests.exports.slow_source.SlowRows"


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="pw")


@pytest.fixture
def staff(django_user_model):
    """An operator: staff (the admin, staff-only sources) holding jobs.view_job (every user's jobs)."""
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("ops", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(content_type__app_label="jobs", codename="view_job"))
    return user


@pytest.fixture
def media_root(settings, tmp_path):
    """Exports go to a fresh MEDIA_ROOT (the file system storage follows the setting)."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def make_products(count: int, *, start: int = 0, inactive_every: int = 0, names: list[str] | None = None) -> None:
    """Insert ``count`` products; every ``inactive_every``-th one inactive; ``names`` override the first names."""
    now = timezone.now()
    Product.objects.bulk_create(
        [
            Product(
                supplier_id=f"P{start + i:07d}",
                sku=f"SKU-{start + i}",
                name=(names[i] if names and i < len(names) else f"Product {start + i}"),
                price=Decimal("9.99") + i,
                currency="EUR",
                stock=i % 50,
                is_active=not (inactive_every and i % inactive_every == 0),
                supplier_updated_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC) + timedelta(minutes=i),
                content_hash="x",
                last_changed_at=now,
            )
            for i in range(count)
        ],
        batch_size=5000,
    )


@pytest.fixture
def exports_worker(start_worker, settings, media_root):
    """Start exports workers sharing this test's MEDIA_ROOT and sources (the slow test source included)."""
    settings.EXPORTS_SOURCES = [*settings.EXPORTS_SOURCES, SLOW]
    env = {"MEDIA_ROOT": str(media_root), "EXPORTS_SOURCES": ",".join(settings.EXPORTS_SOURCES)}

    def _start(**options):
        return start_worker(queues="exports,emails", extra_env=env, **options)

    return _start
