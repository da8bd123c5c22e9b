"""No migration may take a long lock on a large table (CONTRIBUTING.md, "Migrations").

Every migration of the project's apps is walked with the model state it starts from, and each operation that
touches a large table is held to the rules below. A migration that already ran on deployed databases and
breaks a rule is grandfathered by name, with its reason; nothing else may. The rules are PostgreSQL's (14+,
what Django 5.2 supports): the embedded SQLite has no concurrent readers to block.
"""

from __future__ import annotations

import inspect
import io
import re
from dataclasses import dataclass

import pytest
from django.apps import apps as django_apps
from django.core.management import call_command
from django.db import migrations, models
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations.base import Operation
from django.db.migrations.state import ProjectState

from jobs.foundation import schema_operations

PROJECT_APPS = ("jobs", "sync", "exports", "emails")

# Tables big enough, or written often enough, that a lock held for a table scan or an index build stalls
# workers or the API. A migration that creates the table is exempt: it is empty then.
LARGE_TABLES = {
    "jobs_job": "a row per job ever enqueued until pruned; every worker and API call writes it",
    "jobs_jobattempt": "a row per attempt, several per job; written at the end of every attempt",
    "jobs_joblogline": "many lines per attempt; the most rows of any table",
    "jobs_jobauditentry": "every operator action and throttled-login window, kept for the audit trail",
    "django_celery_results_taskresult": "a row per Celery task result; written by every task",
    "exports_export": "a row per export request, kept after its file expires",
    "emails_emailmessage": "the outbox: a row per email with its SMTP transcript, kept",
    "emails_emailrecipient": "a row per queued address, read and written by every send (the recipient limit)",
    "sync_product": "the supplier catalogue, the size of the supplier's (tens of thousands of rows and up)",
    "sync_syncpage": "a row per catalogue page per sync run",
    "sync_webhookevent": "a row per supplier webhook, kept for deduplication",
}
# Tables that stay small however long the platform runs: a lock on them is over in milliseconds.
SMALL_TABLES = {
    "jobs_jobtypeswitch": "a row per job type",
    "jobs_apitoken": "a few tokens per user",
    "jobs_declaredschedulestate": "a row per declared schedule",
    "sync_syncrun": "a row per sync run, a few a day",
    "emails_suppression": "bounced addresses; thousands at most, and only a send reads it",
}

# Migrations applied on deployed databases before this check existed. Rewriting one would change nothing
# where it already ran, and only the newest may be rewritten at all (see CONTRIBUTING.md).
GRANDFATHERED = {
    "jobs.0003_drop_unused_like_indexes": "drops two unused indexes of jobs_job with a plain DROP INDEX (a brief "
    "exclusive lock); applied everywhere, and not the newest",
    "jobs.0004_partial_indexes_for_mostly_null_columns": "rebuilt three jobs_job indexes as partial ones "
    "without CONCURRENTLY when the table was young; applied everywhere, and not the newest",
    "jobs.0009_audit_counted_events": "its unique index is built CONCURRENTLY since issue 23, but it adds a "
    "PositiveIntegerField (its CHECK scans jobs_jobauditentry) beside it in one non-atomic migration; splitting "
    "it would rename an applied migration",
}

# Operations that take at most a brief lock whatever the table's size (catalogue changes, renames, drops).
BRIEF = (
    migrations.AlterModelOptions,
    migrations.AlterModelManagers,
    migrations.RenameField,
    migrations.RenameModel,
    migrations.RenameIndex,
    migrations.RemoveField,
    migrations.DeleteModel,
    migrations.AlterModelTable,
    migrations.AlterModelTableComment,
)
CONCURRENT = (
    schema_operations.AddIndexConcurrently,
    schema_operations.RemoveIndexConcurrently,
    schema_operations.AddConstraintConcurrently,
    schema_operations.RemoveConstraintConcurrently,
)
INSTEAD_ADD_INDEX = "AddIndexConcurrently (jobs.foundation.schema_operations; domain apps: jobs.public) in a " \
    "migration with atomic = False"  # fmt: skip
# PostgreSQL adds a CHECK (col >= 0) to these; adding the column then scans the table to validate it.
CHECKED_TYPES = {"PositiveIntegerField", "PositiveSmallIntegerField", "PositiveBigIntegerField"}


@dataclass(frozen=True)
class Finding:
    migration: str
    operation: str
    table: str
    problem: str
    instead: str

    def __str__(self) -> str:
        return f"{self.migration}: {self.operation} on {self.table}: {self.problem}; use instead: {self.instead}"


def table_of(state: ProjectState, app_label: str, model_name: str) -> str:
    model_state = state.models.get((app_label, model_name.lower()))
    if model_state is not None and model_state.options.get("db_table"):
        return model_state.options["db_table"]
    return f"{app_label}_{model_name.lower()}"


def operation_table(state: ProjectState, app_label: str, operation: Operation) -> str:
    """The table a model operation works on ("-" for the others)."""
    model_name = getattr(operation, "model_name", None) or getattr(operation, "name", None)
    return table_of(state, app_label, model_name) if isinstance(model_name, str) else "-"


def field_changes(old: models.Field, new: models.Field) -> set[str]:
    """The field's attributes that change its column (what Django's schema editor would alter)."""
    _, old_path, _, old_kwargs = old.deconstruct()
    _, new_path, _, new_kwargs = new.deconstruct()
    for kwargs, field in ((old_kwargs, old), (new_kwargs, new)):
        for attr in (*field.non_db_attrs, "default"):  # Django never leaves a default in the column
            kwargs.pop(attr, None)
    changed = {key for key in old_kwargs.keys() | new_kwargs.keys() if old_kwargs.get(key) != new_kwargs.get(key)}
    return changed | ({"type"} if old_path != new_path else set())


def field_findings(field: models.Field, *, adding: bool) -> list[tuple[str, str]]:
    problems = []
    if field.unique or field.db_index:  # a ForeignKey's db_index is True unless turned off
        problems.append(("builds an index under a lock that blocks writes",
                         "the field with db_index=False / unique=False, then " + INSTEAD_ADD_INDEX))  # fmt: skip
    if isinstance(field, models.ForeignKey) and field.db_constraint:
        problems.append(("validates a foreign key over every row",
                         "db_constraint=False, or a reviewed RunSQL adding the constraint NOT VALID"))  # fmt: skip
    if adding and type(field).__name__ in CHECKED_TYPES:
        problems.append(
            (
                "its CHECK (>= 0) makes PostgreSQL scan the table under an exclusive lock",
                "an IntegerField (plus, if needed, a CheckConstraint added NOT VALID in reviewed RunSQL)",
            )
        )
    if adding and getattr(field, "db_default", models.NOT_PROVIDED) is not models.NOT_PROVIDED:
        problems.append(("db_default may be volatile, which rewrites the table", "review it and list it here"))
    return problems


def mentions(code: str, table: str, state: ProjectState) -> bool:
    """Whether SQL or a data migration's source names the table, or its model through apps.get_model."""
    if re.search(rf"\b{re.escape(table)}\b", code):
        return True
    for app_label, model_name in re.findall(r"get_model\(\s*[\"'](\w+)[\"']\s*,\s*[\"'](\w+)[\"']", code):
        if table_of(state, app_label, model_name) == table:
            return True
    return False


def operation_findings(
    label: str, app_label: str, operation: Operation, state: ProjectState, *, created: set[str]
) -> list[Finding]:
    """What this operation would lock for long on a large table, judged from the state before it."""
    if isinstance(operation, migrations.SeparateDatabaseAndState):
        return [finding for inner in operation.database_operations
                for finding in operation_findings(label, app_label, inner, state, created=created)]  # fmt: skip
    if isinstance(operation, (migrations.RunSQL, migrations.RunPython)):
        if isinstance(operation, migrations.RunSQL):
            code = str(operation.sql) + str(operation.reverse_sql)
        else:
            code = "".join(inspect.getsource(f) for f in (operation.code, operation.reverse_code) if f)
        return [
            Finding(label, operation.describe(), table, "runs code on a large table that no rule can judge",
                    "a reviewed migration listed in GRANDFATHERED with its reason (CONTRIBUTING.md)")
            for table in LARGE_TABLES if table not in created and mentions(code, table, state)
        ]  # fmt: skip
    table = operation_table(state, app_label, operation)
    if table not in LARGE_TABLES or table in created:
        return []

    def found(problem: str, instead: str) -> Finding:
        return Finding(label, operation.describe(), table, problem, instead)

    if isinstance(operation, (migrations.CreateModel, *CONCURRENT)):
        return []  # a new table is empty
    if isinstance(operation, BRIEF):
        return []
    if isinstance(operation, migrations.AddIndex):
        return [found("CREATE INDEX blocks writes until the index is built", INSTEAD_ADD_INDEX)]
    if isinstance(operation, migrations.RemoveIndex):
        return [found("DROP INDEX takes an exclusive lock and queues every query behind the longest running one",
                      "RemoveIndexConcurrently (jobs.foundation.schema_operations) in a migration with "
                      "atomic = False")]  # fmt: skip
    if isinstance(operation, (migrations.AddConstraint, migrations.RemoveConstraint)):
        return [
            found(
                "a unique constraint builds (or drops) an index under a lock, a check constraint scans "
                "every row under an exclusive lock",
                "AddConstraintConcurrently / RemoveConstraintConcurrently for a partial unique constraint; "
                "for a check constraint, a reviewed RunSQL adding it NOT VALID, then VALIDATE CONSTRAINT",
            )
        ]
    if isinstance(operation, migrations.AddField):
        return [found(problem, instead) for problem, instead in field_findings(operation.field, adding=True)]
    if isinstance(operation, migrations.AlterField):
        old = state.models[app_label, operation.model_name_lower].fields[operation.name]
        changes = field_changes(old, operation.field)
        if changes == {"max_length"} and (operation.field.max_length or 0) >= (old.max_length or 0):
            return []  # a wider varchar is a catalogue change on PostgreSQL
        if changes == {"null"} and operation.field.null:
            return []  # DROP NOT NULL needs no scan
        if changes and changes <= {"db_index", "unique"}:
            return [found("builds or drops an index under a lock", "db_index=False on the field and a Meta index "
                          "added with AddIndexConcurrently / removed with RemoveIndexConcurrently")]  # fmt: skip
        if changes:
            return [found(f"changes {', '.join(sorted(changes))}: a rewrite, a scan or an index build under an "
                          "exclusive lock", "a new column, backfilled in batches, then switched to (expand, "
                          "migrate, contract)")]  # fmt: skip
        return []
    return [found(f"{type(operation).__name__} is not known to be safe on a large table",
                  "review it and teach this check its rule")]  # fmt: skip


def walk(loader: MigrationLoader) -> dict[str, list[Finding]]:
    """Each project migration's findings, by "app.name"."""
    found: dict[str, list[Finding]] = {}
    for (app_label, name), migration in sorted(loader.disk_migrations.items()):
        if app_label not in PROJECT_APPS:
            continue
        label = f"{app_label}.{name}"
        state = loader.project_state((app_label, name), at_end=False)
        created: set[str] = set()
        findings: list[Finding] = []
        for operation in migration.operations:
            findings += operation_findings(label, app_label, operation, state, created=created)
            if not migration.atomic and not isinstance(operation, CONCURRENT):
                findings.append(Finding(label, operation.describe(), operation_table(state, app_label, operation), "a non-atomic migration applies it outside "
                                        "a transaction: a failure halfway can neither be rolled back nor run again",
                                        "a migration of its own (atomic) beside the concurrent one"))  # fmt: skip
            if isinstance(operation, migrations.CreateModel):
                created.add(operation.options.get("db_table") or f"{app_label}_{operation.name.lower()}")
            operation.state_forwards(app_label, state)
        found[label] = findings
    return found


@pytest.fixture(scope="module")
def loader() -> MigrationLoader:
    return MigrationLoader(None, ignore_no_migrations=True)


@pytest.fixture(scope="module")
def findings(loader: MigrationLoader) -> dict[str, list[Finding]]:
    return walk(loader)


def test_no_migration_takes_a_long_lock_on_a_large_table(findings):
    refused = [str(f) for label, found in findings.items() if label not in GRANDFATHERED for f in found]
    assert not refused, "migrations that would lock a large table (see CONTRIBUTING.md):\n" + "\n".join(refused)


def test_the_grandfathered_migrations_exist_and_still_need_it(findings):
    stale = [label for label in GRANDFATHERED if not findings.get(label)]
    assert not stale, f"grandfathered but missing or now clean, remove from GRANDFATHERED: {stale}"


def test_a_migration_with_a_concurrent_operation_is_not_atomic(loader):
    refused = []
    for (app_label, name), migration in loader.disk_migrations.items():
        if app_label not in PROJECT_APPS:
            continue
        for operation in migration.operations:
            module = type(operation).__module__
            if module.startswith("django.contrib.postgres"):
                refused.append(f"{app_label}.{name}: {type(operation).__name__} fails on SQLite; use "
                               "jobs.foundation.schema_operations' operation of the same name")  # fmt: skip
            elif isinstance(operation, CONCURRENT) and migration.atomic:
                refused.append(f"{app_label}.{name}: {type(operation).__name__} needs `atomic = False`")
    assert not refused, "\n".join(refused)


def test_every_table_of_the_project_is_judged_large_or_small():
    tables = {model._meta.db_table for app in (*PROJECT_APPS, "django_celery_results")
              for model in django_apps.get_app_config(app).get_models() if not model._meta.proxy}  # fmt: skip
    tables.discard("django_celery_results_chordcounter")  # transient: a row per running chord
    tables.discard("django_celery_results_groupresult")  # the project runs no groups with results
    assert tables - LARGE_TABLES.keys() - SMALL_TABLES.keys() == set(), "add it to LARGE_TABLES or SMALL_TABLES"
    assert LARGE_TABLES.keys() & SMALL_TABLES.keys() == set()


@pytest.mark.django_db
def test_the_models_need_no_new_migration():
    out = io.StringIO()
    try:
        call_command("makemigrations", *PROJECT_APPS, check=True, dry_run=True, stdout=out)
    except SystemExit:
        pytest.fail(f"the models changed without a migration (makemigrations --check --dry-run):\n{out.getvalue()}")


# The rules themselves, on operations that no migration has (yet).
JOB_INDEX = models.Index(fields=["worker"], name="jobs_worker_idx")


def _judge(operation: Operation) -> list[str]:
    state = MigrationLoader(None, ignore_no_migrations=True).project_state()
    return [f.problem for f in operation_findings("jobs.9999_t", "jobs", operation, state, created=set())]


@pytest.mark.parametrize(
    ("operation", "refused"),
    [
        (migrations.AddIndex("job", JOB_INDEX), True),
        (schema_operations.AddIndexConcurrently("job", JOB_INDEX), False),
        (migrations.RemoveIndex("job", "jobs_running_idx"), True),
        (migrations.AddIndex("jobtypeswitch", models.Index(fields=["reason"], name="r_idx")), False),
        (migrations.AddField("job", "note", models.TextField(blank=True, null=True)), False),
        (migrations.AddField("job", "note", models.CharField(max_length=9, default="")), False),
        (migrations.AddField("job", "tries", models.PositiveIntegerField(default=0)), True),
        (migrations.AddField("job", "ref", models.CharField(max_length=9, unique=True, null=True)), True),
        (migrations.AddField("jobattempt", "by", models.ForeignKey("auth.user", models.CASCADE, null=True)), True),
        (migrations.AlterField("job", "worker", models.CharField(blank=True, max_length=255, help_text="x")), False),
        (migrations.AlterField("job", "worker", models.CharField(blank=True, max_length=500)), False),
        (migrations.AlterField("job", "worker", models.CharField(blank=True, max_length=100)), True),
        (migrations.AlterField("job", "worker", models.TextField(blank=True)), True),
        (migrations.AddConstraint("job", models.CheckConstraint(condition=models.Q(attempt__gte=0), name="c")), True),
        (migrations.RunSQL("UPDATE jobs_job SET worker = ''"), True),
        (migrations.RunSQL("UPDATE jobs_apitoken SET name = ''"), False),
    ],
)
def test_the_rules(operation, refused):
    assert bool(_judge(operation)) is refused, _judge(operation)


def test_a_non_atomic_migration_holds_only_concurrent_operations():
    migration = type("Migration", (migrations.Migration,), {"atomic": False})("9999_t", "jobs")
    migration.operations = [schema_operations.AddIndexConcurrently("job", JOB_INDEX),
                            migrations.AddField("jobtypeswitch", "note", models.TextField(null=True))]  # fmt: skip
    loader = MigrationLoader(None, ignore_no_migrations=True)
    leaf = loader.graph.leaf_nodes("jobs")[0]
    migration.dependencies = [leaf]
    loader.disk_migrations = {("jobs", "9999_t"): migration}
    loader.graph.add_node(("jobs", "9999_t"), migration)
    loader.graph.add_dependency(migration, ("jobs", "9999_t"), leaf)
    assert [(f.operation, f.table) for f in walk(loader)["jobs.9999_t"]] == [
        ("Add field note to jobtypeswitch", "jobs_jobtypeswitch")
    ]
