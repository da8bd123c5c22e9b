"""What the jobs migrations leave in the database."""

import pytest
from django.db import connection

from jobs.models import Job


@pytest.mark.django_db
def test_job_table_has_no_pattern_indexes_nothing_reads():
    if connection.vendor != "postgresql":
        pytest.skip("varchar_pattern_ops indexes exist only on PostgreSQL; SQLite never has them")
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [Job._meta.db_table])
        indexes = dict(cursor.fetchall())
    assert [name for name, definition in indexes.items() if "pattern_ops" in definition] == []
    assert "jobs_unpublished_idx" in indexes  # the declared indexes are still there


@pytest.mark.django_db
def test_indexes_on_mostly_null_columns_leave_the_nulls_out():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Job._meta.db_table)
    by_columns = {tuple(info["columns"]): name for name, info in constraints.items() if info["index"]}
    # No index on replay_of_id alone but the partial one (Django's own FK index is gone).
    assert by_columns[("replay_of_id",)] == "jobs_replay_of_idx"
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [Job._meta.db_table])
            definitions = dict(cursor.fetchall())
        for name, column in (("jobs_replay_of_idx", "replay_of_id"), ("jobs_finished_idx", "finished_at"),
                             ("jobs_owner_created_idx", "owner_id")):  # fmt: skip
            assert definitions[name].endswith(f"WHERE ({column} IS NOT NULL)"), definitions[name]
