"""What the jobs migrations leave in the database."""

import pytest
from django.db import connection

from jobs.models import Job


@pytest.mark.django_db
def test_job_table_has_no_pattern_indexes_nothing_reads():
    if connection.vendor != "postgresql":
        pytest.skip("varchar_pattern_ops indexes exist only on PostgreSQL")
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [Job._meta.db_table])
        indexes = dict(cursor.fetchall())
    assert [name for name, definition in indexes.items() if "pattern_ops" in definition] == []
    assert "jobs_unpublished_idx" in indexes  # the declared indexes are still there
