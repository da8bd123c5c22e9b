"""Model instances from hand-written SQL, for the few reads every API request makes.

Building a query with the ORM costs more CPU than running it: on a status poll the ORM's
per-call compilation was over half of the request (bench/README.md, api). The hot reads (the
bearer token with its user and permissions, one job, its attempts) therefore use SQL written
from the models' metadata, and turn rows into instances the way the ORM does: each column
through the backend's and its field's converters, then ``Model.from_db``. Everything else
stays on the ORM.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model

M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class RowReader(Generic[M]):
    """How to select one model's concrete columns and make an instance of them."""

    model: type[M]
    # '"table"."column", ...' in the order of ``attnames``: a select list for hand-written SQL.
    columns: str
    attnames: list[str]
    # (position, converters, column expression) for the columns whose values need converting.
    converters: list[tuple[int, list[Callable[..., Any]], Any]]

    @property
    def width(self) -> int:
        return len(self.attnames)

    def instance(self, row: Sequence[Any], connection: BaseDatabaseWrapper, *, start: int = 0) -> M:
        """The instance from ``row[start:start + width]``, as the ORM would load it."""
        values = list(row[start : start + self.width])
        for position, converters, expression in self.converters:
            value = values[position]
            for converter in converters:
                value = converter(value, expression, connection)
            values[position] = value
        return self.model.from_db(connection.alias, self.attnames, values)


# Per connection (one per thread): the backend's converters are methods of that connection's operations.
_readers: weakref.WeakKeyDictionary[BaseDatabaseWrapper, dict[type[Model], RowReader[Any]]] = (
    weakref.WeakKeyDictionary()
)


def row_reader(model: type[M], connection: BaseDatabaseWrapper) -> RowReader[M]:
    """The reader of ``model``'s rows on ``connection`` (built once per connection)."""
    by_model = _readers.setdefault(connection, {})
    reader = by_model.get(model)
    if reader is None:
        fields = model._meta.concrete_fields
        table = connection.ops.quote_name(model._meta.db_table)
        converters = []
        for position, field in enumerate(fields):
            expression = field.get_col(model._meta.db_table)
            found = connection.ops.get_db_converters(expression) + expression.get_db_converters(connection)
            if found:
                converters.append((position, found, expression))
        reader = by_model[model] = RowReader(
            model=model,
            columns=", ".join(f"{table}.{connection.ops.quote_name(field.column)}" for field in fields),
            attnames=[field.attname for field in fields],
            converters=converters,
        )
    return reader


def table_name(db: BaseDatabaseWrapper, model: type[Model]) -> str:
    """``model``'s table, quoted for ``db``."""
    return db.ops.quote_name(model._meta.db_table)


def column_name(db: BaseDatabaseWrapper, model: type[Model], field_name: str) -> str:
    """The column of ``model``'s field ``field_name`` (``"pk"`` for the primary key), quoted for ``db``."""
    field = model._meta.pk if field_name == "pk" else model._meta.get_field(field_name)
    return db.ops.quote_name(cast("Field[Any, Any]", field).column)
