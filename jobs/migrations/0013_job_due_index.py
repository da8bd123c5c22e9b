# The scheduler's tick reads jobs that run later through this index (issue 25). Its own migration: the index is
# built CONCURRENTLY on PostgreSQL, outside a transaction, and the column it needs is added atomically before it.

from django.db import migrations, models

from jobs.foundation.schema_operations import AddIndexConcurrently


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("jobs", "0012_job_run_at_concurrency_key"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="job",
            index=models.Index(
                condition=models.Q(("published_at__isnull", True), ("run_at__isnull", False), ("status", "queued")),
                fields=["run_at"],
                name="jobs_due_idx",
            ),
        ),
    ]
