"""Inserting many rows that share most of their columns, in one statement per batch.

Bulk enqueue writes thousands of job rows that differ only in a few columns (id, payload,
idempotency key). Django's ``bulk_create`` prepares every column of every row in Python
and sends them all; on PostgreSQL this module sends each shared column once, as a
parameter, and only the varying columns as arrays:

    INSERT INTO t (a, b, c) SELECT v.a, %s::b_type, v.c FROM unnest(%s::a_type[], %s::c_type[]) AS v(a, c)

The values are the model's own: the shared ones come from a template instance (so field
defaults and ``get_db_prep_save`` apply as in ``save()``), and rows come back as model
instances built the way the ORM builds loaded rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from django.db import connections
from django.db.models import Model


def bulk_insert_varying(
    *,
    template: Model,
    varying: Mapping[str, Sequence],
    using: str = "default",
    batch_size: int = 5000,
    skip_conflicts: bool = False,
) -> list[Model]:
    """Insert one row per index of ``varying``'s columns; every other column is ``template``'s.

    ``varying`` maps field attnames to equal-length sequences of Python values (a
    ``JSONField``'s values are JSON-compatible objects). Rows are written in input order, so
    callers can choose the order in which unique keys are locked. ``skip_conflicts`` leaves out rows
    that collide with a unique constraint (``ON CONFLICT DO NOTHING``). Returns the inserted
    rows as saved instances (``_state.adding`` is False), in input order, without the skipped
    ones. Auto fields are not supported: the primary key must be among ``varying`` or
    have a default the template fills.
    """
    model = type(template)
    fields = model._meta.concrete_fields
    attnames = [field.attname for field in fields]
    unknown = set(varying) - set(attnames)
    if unknown:
        raise ValueError(f"{model.__name__} has no columns {sorted(unknown)}; expected some of {attnames}")
    lengths = {len(values) for values in varying.values()}
    if len(lengths) > 1:
        raise ValueError(f"varying columns have different lengths {sorted(lengths)}; expected one length")
    count = lengths.pop() if lengths else 0
    if count == 0:
        return []
    if model._meta.pk.attname not in varying:
        raise ValueError("the primary key must vary: each row needs its own")
    connection = connections[using]
    if connection.vendor != "postgresql":
        return _insert_with_orm(template, varying, count, using=using, skip_conflicts=skip_conflicts)

    # Shared columns: prepared once, exactly as save() would prepare them.
    for field in fields:
        if field.attname not in varying:
            field.pre_save(template, add=True)  # auto_now(_add) fields take their value here
    shared_params = {
        field.attname: field.get_db_prep_save(getattr(template, field.attname), connection=connection)
        for field in fields
        if field.attname not in varying
    }
    varying_fields = [field for field in fields if field.attname in varying]
    quote = connection.ops.quote_name
    select_list = ", ".join(
        f"v.{quote(field.column)}" if field.attname in varying else f"%s::{field.db_type(connection)}"
        for field in fields
    )
    unnest_args = ", ".join(f"%s::{field.db_type(connection)}[]" for field in varying_fields)
    alias_list = ", ".join(quote(field.column) for field in varying_fields)
    pk_column = quote(model._meta.pk.column)
    # ORDER BY the array position: rows are written, and unique-index entries locked, in input order.
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
        f"SELECT {select_list} FROM unnest({unnest_args}) WITH ORDINALITY AS v({alias_list}, row_position) "
        "ORDER BY v.row_position"
        + (" ON CONFLICT DO NOTHING" if skip_conflicts else "")
        + f" RETURNING {pk_column}"
    )
    shared_in_order = [shared_params[field.attname] for field in fields if field.attname not in varying]
    prepared_columns = {
        field.attname: _prepare_column(field, varying[field.attname], connection) for field in varying_fields
    }
    inserted: set = set()
    with connection.cursor() as cursor:
        for start in range(0, count, batch_size):
            arrays = [prepared_columns[field.attname][start : start + batch_size] for field in varying_fields]
            cursor.execute(sql, [*shared_in_order, *arrays])
            inserted.update(row[0] for row in cursor.fetchall())
    return _instances(template, varying, count, using=using, keep=inserted)


def _prepare_column(field, values: Sequence, connection) -> list:
    if field.get_internal_type() == "JSONField":
        # Sent as json text and cast to jsonb[] in SQL: an array of adapter objects cannot be dumped.
        encoder = getattr(field, "encoder", None)
        return [None if value is None else json.dumps(value, cls=encoder) for value in values]
    return [field.get_db_prep_save(value, connection=connection) for value in values]


def _instances(template: Model, varying: Mapping[str, Sequence], count: int, *, using: str, keep) -> list[Model]:
    """Saved instances built from the template's values and each row's varying ones."""
    model = type(template)
    fields = model._meta.concrete_fields
    base = [getattr(template, field.attname) for field in fields]
    positions = [(index, varying[field.attname]) for index, field in enumerate(fields) if field.attname in varying]
    pk_values = varying[model._meta.pk.attname]
    rows = []
    for row in range(count):
        if pk_values[row] not in keep:
            continue
        values = list(base)
        for index, column in positions:
            values[index] = column[row]
        # from_db is how the ORM builds a loaded row: positional and without running defaults.
        rows.append(model.from_db(using, None, values))
    return rows


def _insert_with_orm(template: Model, varying, count: int, *, using: str, skip_conflicts: bool) -> list[Model]:
    model = type(template)
    shared = {
        field.attname: getattr(template, field.attname)
        for field in model._meta.concrete_fields
        if field.attname not in varying
    }
    objects = [model(**shared, **{name: values[row] for name, values in varying.items()}) for row in range(count)]
    manager = model._default_manager.using(using)
    manager.bulk_create(objects, ignore_conflicts=skip_conflicts)
    if not skip_conflicts:
        return objects
    # Without RETURNING for skipped rows, the fresh primary keys that exist now are the inserted ones.
    pk_name = model._meta.pk.attname
    present = set(manager.filter(pk__in=[getattr(obj, pk_name) for obj in objects]).values_list("pk", flat=True))
    return [obj for obj in objects if getattr(obj, pk_name) in present]
