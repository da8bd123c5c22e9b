"""The concurrent index operations: CONCURRENTLY on PostgreSQL, the plain statement on SQLite, never in a transaction."""

import pytest
from django.core.management import call_command
from django.db import NotSupportedError, connection, models
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.state import ProjectState
from django.test.utils import CaptureQueriesContext

from jobs.foundation.schema_operations import (
    AddConstraintConcurrently,
    AddIndexConcurrently,
    RemoveConstraintConcurrently,
    RemoveIndexConcurrently,
)
from jobs.models import Job, JobAuditEntry

pytestmark = pytest.mark.django_db(transaction=True)  # CONCURRENTLY refuses a transaction, as the operations do

WORKER_INDEX = models.Index(fields=["worker"], name="jobs_test_worker_idx")
AUDIT_KEY = "jobs_audit_aggregation_key_uniq"  # jobs/0009's partial unique index


def states(operation) -> tuple[ProjectState, ProjectState]:
    before = MigrationLoader(connection).project_state()
    after = before.clone()
    operation.state_forwards("jobs", after)
    return before, after


def constraints(table: str) -> dict:
    with connection.cursor() as cursor:
        return connection.introspection.get_constraints(cursor, table)


def run(operation, before, after, *, backwards: bool = False) -> list[str]:
    """Apply the operation as a non-atomic migration would; return the SQL it sent."""
    with CaptureQueriesContext(connection) as queries, connection.schema_editor(atomic=False) as editor:
        if backwards:
            operation.database_backwards("jobs", editor, after, before)
        else:
            operation.database_forwards("jobs", editor, before, after)
    return [q["sql"] for q in queries if "INDEX" in q["sql"].upper()]


def collected(operation, before, after, *, backwards: bool = False) -> list[str]:
    """The SQL sqlmigrate would show (nothing executed)."""
    with connection.schema_editor(collect_sql=True, atomic=False) as editor:
        if backwards:
            operation.database_backwards("jobs", editor, after, before)
        else:
            operation.database_forwards("jobs", editor, before, after)
    return editor.collected_sql


def concurrently_on_postgres(statements: list[str], verb: str) -> None:
    keyword = f"{verb} CONCURRENTLY" if connection.vendor == "postgresql" else verb
    assert statements and all(keyword in sql for sql in statements), statements
    if connection.vendor != "postgresql":
        assert not any("CONCURRENTLY" in sql for sql in statements), statements


def test_an_index_is_added_and_removed_concurrently_on_postgres_and_plainly_elsewhere():
    add = AddIndexConcurrently("job", WORKER_INDEX)
    before, after = states(add)
    concurrently_on_postgres(collected(add, before, after), "CREATE INDEX")
    concurrently_on_postgres(run(add, before, after), "CREATE INDEX")
    assert constraints(Job._meta.db_table)[WORKER_INDEX.name]["columns"] == ["worker"]

    remove = RemoveIndexConcurrently("job", WORKER_INDEX.name)
    concurrently_on_postgres(run(remove, after, before), "DROP INDEX")
    assert WORKER_INDEX.name not in constraints(Job._meta.db_table)
    concurrently_on_postgres(run(remove, after, before, backwards=True), "CREATE INDEX")  # un-removed
    concurrently_on_postgres(run(add, before, after, backwards=True), "DROP INDEX")  # un-added
    assert WORKER_INDEX.name not in constraints(Job._meta.db_table)


def test_a_partial_unique_constraint_is_dropped_and_rebuilt_concurrently():
    with_key = MigrationLoader(connection).project_state()
    constraint = with_key.models["jobs", "jobauditentry"].get_constraint_by_name(AUDIT_KEY)
    remove = RemoveConstraintConcurrently("jobauditentry", AUDIT_KEY)
    without_key = with_key.clone()
    remove.state_forwards("jobs", without_key)

    concurrently_on_postgres(run(remove, with_key, without_key), "DROP INDEX")
    assert AUDIT_KEY not in constraints(JobAuditEntry._meta.db_table)
    add = AddConstraintConcurrently("jobauditentry", constraint)
    concurrently_on_postgres(collected(add, without_key, with_key), "CREATE UNIQUE INDEX")
    concurrently_on_postgres(run(add, without_key, with_key), "CREATE UNIQUE INDEX")
    rebuilt = constraints(JobAuditEntry._meta.db_table)[AUDIT_KEY]
    assert (rebuilt["unique"], rebuilt["columns"]) == (True, ["aggregation_key"])


def test_the_operations_refuse_a_transaction_on_every_backend():
    add = AddIndexConcurrently("job", WORKER_INDEX)
    before, after = states(add)
    with pytest.raises(NotSupportedError, match="set `atomic = False` on its migration"):
        with connection.schema_editor(atomic=True) as editor:
            add.database_forwards("jobs", editor, before, after)
    assert WORKER_INDEX.name not in constraints(Job._meta.db_table)


def test_a_plain_unique_constraint_is_refused():
    with pytest.raises(TypeError, match="with a condition"):
        AddConstraintConcurrently("job", models.UniqueConstraint(fields=["worker"], name="jobs_test_uniq"))


def test_jobs_0009_migrates_backwards_and_forwards():
    try:
        call_command("migrate", "jobs", "0008", verbosity=0)
        assert "aggregation_key" not in {c.name for c in connection.introspection.get_table_description(
            connection.cursor(), JobAuditEntry._meta.db_table)}  # fmt: skip
        with CaptureQueriesContext(connection) as queries:
            call_command("migrate", "jobs", "0009", verbosity=0)
        concurrently_on_postgres([q["sql"] for q in queries if AUDIT_KEY in q["sql"]], "CREATE UNIQUE INDEX")
        assert constraints(JobAuditEntry._meta.db_table)[AUDIT_KEY]["unique"]
    finally:
        # Back to the latest schema: 0009 is no longer the last migration, and later tests need its successors.
        call_command("migrate", "jobs", verbosity=0)
    assert "run_at" in {c.name for c in connection.introspection.get_table_description(
        connection.cursor(), "jobs_job")}  # fmt: skip
