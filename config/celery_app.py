"""The Celery application: every worker, beat and Flower process loads this module."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("jobplatform")
# All CELERY_* Django settings configure the app (see config/settings/base.py).
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _configure_db_reuse() -> None:
    # Celery's Django fixup reads this literal key, not the namespaced one; without
    # it every task opens a new database connection (~3x slower tracked jobs).
    from django.conf import settings

    app.conf["CELERY_DB_REUSE_MAX"] = getattr(settings, "CELERY_DB_REUSE_MAX", None)


app.on_after_configure.connect(lambda sender, **kwargs: _configure_db_reuse(), weak=False)
