"""The admin's search by words in a job's error and payload: a pg_trgm GIN index, built without blocking writes.

PostgreSQL only (``PostgresOnlyGinIndex``): SQLite has no GIN and its search scans. ``pg_trgm`` ships with
PostgreSQL and is a trusted extension (13+): the database's owner may create it without being a superuser.
"""

import django.contrib.postgres.indexes
import django.db.models.functions.comparison
from django.db import migrations, models

import jobs.models
from jobs.foundation.schema_operations import AddIndexConcurrently


def create_pg_trgm(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("jobs", "0009_audit_counted_events"),
    ]

    operations = [
        # Left in place on the way back: other tables may use it, and it costs nothing unused.
        migrations.RunPython(create_pg_trgm, migrations.RunPython.noop, elidable=False),
        AddIndexConcurrently(
            model_name="job",
            index=jobs.models.PostgresOnlyGinIndex(
                django.contrib.postgres.indexes.OpClass(
                    jobs.models.JobSearchText(
                        "error_code",
                        "error_message",
                        django.db.models.functions.comparison.Cast("payload", models.TextField()),
                    ),
                    name="gin_trgm_ops",
                ),
                name="jobs_search_trgm_idx",
            ),
        ),
    ]
