"""Migration operations that build and drop indexes without blocking writes on PostgreSQL, and plainly elsewhere.

``django.contrib.postgres``'s ``AddIndexConcurrently`` fails on SQLite (the embedded default), so these branch
on the connection: ``CREATE/DROP INDEX CONCURRENTLY`` on PostgreSQL, the ordinary statement anywhere else.
``CONCURRENTLY`` cannot run inside a transaction, so the migration must say ``atomic = False``; each operation
refuses to run inside one, on every backend, so a forgotten flag fails in ``make test`` on SQLite too.

If a concurrent build fails halfway, PostgreSQL leaves an INVALID index behind: drop it and migrate again.
Domain apps import these from ``jobs.public``; CONTRIBUTING.md says when a migration needs them.
"""

from __future__ import annotations

from typing import Any

from django.db import NotSupportedError
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.operations import AddConstraint, AddIndex, RemoveConstraint, RemoveIndex
from django.db.migrations.state import ProjectState
from django.db.models import Model, UniqueConstraint


def _concurrently(operation: object, schema_editor: BaseDatabaseSchemaEditor) -> bool:
    """Whether to build concurrently here; refuse a transaction, which CONCURRENTLY cannot run in."""
    if not schema_editor.collect_sql and schema_editor.connection.in_atomic_block:
        raise NotSupportedError(
            f"{type(operation).__name__} cannot run inside a transaction: set `atomic = False` on its migration."
        )
    return schema_editor.connection.vendor == "postgresql"


class AddIndexConcurrently(AddIndex):
    """``AddIndex`` that does not block writes on PostgreSQL (``CREATE INDEX CONCURRENTLY``)."""

    atomic = False

    def describe(self) -> str:
        return f"Concurrently create index {self.index.name} on {self.model_name}"

    def database_forwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            _add_index(schema_editor, model, self.index, concurrently=_concurrently(self, schema_editor))

    def database_backwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            _remove_index(schema_editor, model, self.index, concurrently=_concurrently(self, schema_editor))


class RemoveIndexConcurrently(RemoveIndex):
    """``RemoveIndex`` that does not block reads and writes on PostgreSQL (``DROP INDEX CONCURRENTLY``)."""

    atomic = False

    def describe(self) -> str:
        return f"Concurrently remove index {self.name} from {self.model_name}"

    def database_forwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            index = from_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
            _remove_index(schema_editor, model, index, concurrently=_concurrently(self, schema_editor))

    def database_backwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            index = to_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
            _add_index(schema_editor, model, index, concurrently=_concurrently(self, schema_editor))


def _builds_here(schema_editor: BaseDatabaseSchemaEditor, index: Any) -> bool:
    """An index marked ``postgresql_only`` (a GIN index, say) exists on PostgreSQL only."""
    return not getattr(index, "postgresql_only", False) or schema_editor.connection.vendor == "postgresql"


def _add_index(schema_editor: BaseDatabaseSchemaEditor, model: type[Model], index: Any, *, concurrently: bool) -> None:
    if not _builds_here(schema_editor, index):
        return
    if concurrently:  # only PostgreSQL's schema editor takes the flag
        schema_editor.add_index(model, index, concurrently=True)  # type: ignore[call-arg]
    else:
        schema_editor.add_index(model, index)


def _remove_index(
    schema_editor: BaseDatabaseSchemaEditor, model: type[Model], index: Any, *, concurrently: bool
) -> None:
    if not _builds_here(schema_editor, index):
        return
    if concurrently:
        schema_editor.remove_index(model, index, concurrently=True)  # type: ignore[call-arg]
    else:
        schema_editor.remove_index(model, index)


def _unique_index_constraint(operation: object, constraint: object) -> UniqueConstraint:
    # A unique constraint with a condition, expressions, INCLUDE or opclasses is a plain unique index on
    # PostgreSQL, which CONCURRENTLY can build. A plain one is a table constraint, which it cannot.
    if isinstance(constraint, UniqueConstraint) and (
        constraint.condition is not None
        or constraint.expressions
        or getattr(constraint, "include", ())  # not in django-stubs
        or getattr(constraint, "opclasses", ())
    ):
        return constraint
    raise TypeError(
        f"{type(operation).__name__} takes a UniqueConstraint with a condition, expressions, include or opclasses "
        f"(PostgreSQL builds those as unique indexes), not {constraint!r}."
    )


class AddConstraintConcurrently(AddConstraint):
    """``AddConstraint`` of a partial (or expression) unique constraint: ``CREATE UNIQUE INDEX CONCURRENTLY``."""

    atomic = False
    model_name: str  # set by AddConstraint; django-stubs does not declare them
    model_name_lower: str
    constraint: UniqueConstraint

    def __init__(self, model_name: str, constraint: UniqueConstraint) -> None:
        super().__init__(model_name, _unique_index_constraint(self, constraint))

    def describe(self) -> str:
        return f"Concurrently create unique index {self.constraint.name} on {self.model_name}"

    def database_forwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            _add_unique_index(schema_editor, model, self.constraint, concurrently=_concurrently(self, schema_editor))

    def database_backwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            _remove_unique_index(schema_editor, model, self.constraint, concurrently=_concurrently(self, schema_editor))


class RemoveConstraintConcurrently(RemoveConstraint):
    """``RemoveConstraint`` of a partial (or expression) unique constraint: ``DROP INDEX CONCURRENTLY``."""

    atomic = False
    model_name: str  # set by RemoveConstraint; django-stubs does not declare them
    model_name_lower: str
    name: str

    def database_forwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            constraint = from_state.models[app_label, self.model_name_lower].get_constraint_by_name(self.name)
            constraint = _unique_index_constraint(self, constraint)
            _remove_unique_index(schema_editor, model, constraint, concurrently=_concurrently(self, schema_editor))

    def database_backwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            constraint = to_state.models[app_label, self.model_name_lower].get_constraint_by_name(self.name)
            constraint = _unique_index_constraint(self, constraint)
            _add_unique_index(schema_editor, model, constraint, concurrently=_concurrently(self, schema_editor))

    def describe(self) -> str:
        return f"Concurrently remove unique index {self.name} from {self.model_name}"


def _add_unique_index(
    schema_editor: BaseDatabaseSchemaEditor, model: type[Model], constraint: UniqueConstraint, *, concurrently: bool
) -> None:
    if not concurrently:
        schema_editor.add_constraint(model, constraint)
        return
    statement: Any = constraint.create_sql(model, schema_editor)  # a ddl_references.Statement
    # Django has no concurrent form of this statement; the template is PostgreSQL's sql_create_unique_index.
    plain, concurrent = "CREATE UNIQUE INDEX ", "CREATE UNIQUE INDEX CONCURRENTLY "
    if not statement.template.startswith(plain):
        raise NotSupportedError(f"unexpected unique index statement: {statement.template!r}")
    statement.template = concurrent + statement.template.removeprefix(plain)
    schema_editor.execute(statement, params=None)


def _remove_unique_index(
    schema_editor: BaseDatabaseSchemaEditor, model: type[Model], constraint: UniqueConstraint, *, concurrently: bool
) -> None:
    if not concurrently:
        schema_editor.remove_constraint(model, constraint)
        return
    schema_editor.execute(
        schema_editor._delete_index_sql(model, constraint.name, concurrently=True),  # type: ignore[attr-defined]
        params=None,
    )
