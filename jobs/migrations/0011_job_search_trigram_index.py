"""The admin's search by words in a job's error and payload: a pg_trgm GIN index, built without blocking writes.

PostgreSQL only (``PostgresOnlyGinIndex``): SQLite has no GIN and its search scans. The extension comes from
0010_pg_trgm_extension, in a migration of its own: this one is not atomic (CONCURRENTLY).
"""

import django.contrib.postgres.indexes
import django.db.models.functions.comparison
from django.db import migrations, models

import jobs.models
from jobs.foundation.schema_operations import AddIndexConcurrently


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("jobs", "0010_pg_trgm_extension"),
    ]

    operations = [
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
