"""Writing new job rows: one cached INSERT statement, and COPY for bulk on PostgreSQL.

Enqueueing is on the caller's request path, so it is kept short. Django's ORM
compiles a new INSERT for every ``save()`` and converts every value through its
field (about half of the Python time of an enqueue, for a row of nineteen
columns). Here the statement is built once per database and column list, and
values a driver takes as they are (strings, integers, ``None``) skip the
conversion; the others (ids, dates, JSON) go through their Django field as
before, so rows are written exactly as the ORM would write them.

``Job.save()`` still runs as usual (``pre_save`` / ``post_save`` signals,
transaction handling); only the last step, the INSERT itself, comes from here.
"""

from __future__ import annotations

import datetime
import functools
import operator
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.db import connections, models

# Fields whose values the database drivers take as they are when they have this type.
_PLAIN: dict[type[models.Field], type] = {
    models.CharField: str,
    models.TextField: str,
    models.IntegerField: int,
    models.PositiveIntegerField: int,
}

Prep = Callable[[Any], Any]
Get = Callable[[models.Model], Any]
_plans: dict[tuple[str, bool, tuple[str, ...]], tuple[str, list[tuple[Get, Prep]]]] = {}


def _getter(field: models.Field) -> Get:
    stamped = getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
    if not stamped and (
        isinstance(field, models.DateField) or type(field).pre_save is models.Field.pre_save
    ):
        return operator.attrgetter(field.attname)
    return functools.partial(_pre_save, field)  # auto_now and the like: the field decides


def _pre_save(field: models.Field, obj: models.Model) -> Any:
    return field.pre_save(obj, add=True)


def _prep(field: models.Field, connection: Any) -> Prep:
    plain = None if isinstance(field, models.ForeignKey) else _PLAIN.get(type(field))
    if isinstance(field, models.UUIDField) and connection.features.has_native_uuid_field:
        plain = uuid.UUID
    # Aware datetimes, where the backend passes them to its driver unchanged.
    aware = isinstance(field, models.DateTimeField) and _passes_datetimes(connection)
    nullable = field.null
    convert = field.get_db_prep_save

    def prep(value: Any) -> Any:
        if (plain is not None and type(value) is plain) or (value is None and nullable):
            return value
        if aware and type(value) is datetime.datetime and value.tzinfo is not None:
            return value
        return convert(value, connection)

    return prep


def _passes_datetimes(connection: Any) -> bool:
    sample = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    return settings.USE_TZ and connection.ops.adapt_datetimefield_value(sample) is sample


def _plan(
    connection: Any, fields: Sequence[models.Field]
) -> tuple[str, list[tuple[Get, Prep]]]:
    key = (connection.alias, settings.USE_TZ, tuple(field.column for field in fields))
    plan = _plans.get(key)
    if plan is None:
        quote = connection.ops.quote_name
        table = quote(fields[0].model._meta.db_table)
        columns = ", ".join(quote(field.column) for field in fields)
        sql = f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"
        steps = [(_getter(field), _prep(field, connection)) for field in fields]
        plan = _plans[key] = (sql, steps)
    return plan


def row(obj: models.Model, steps: Sequence[tuple[Get, Prep]]) -> list[Any] | None:
    """The values of ``obj`` as its INSERT writes them (``None`` if one is an
    expression, which only the ORM can compile)."""
    values = []
    for get, prep in steps:
        value = get(obj)
        if hasattr(value, "resolve_expression"):
            return None
        values.append(prep(value))
    return values


def insert_one(obj: models.Model, fields: Sequence[models.Field], using: str) -> bool:
    """INSERT ``obj`` with the cached statement; False (nothing written) if a value is
    an expression and the ORM must compile this one."""
    connection = connections[using]
    sql, steps = _plan(connection, fields)
    values = row(obj, steps)
    if values is None:
        return False
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
    return True


def insert_many(objs: Sequence[models.Model], using: str, batch_size: int) -> bool:
    """INSERT every object of ``objs`` (one model): COPY on PostgreSQL, multi-row
    ``executemany`` elsewhere, ``batch_size`` rows per call, in the caller's
    transaction. False (nothing written) if a value is an expression."""
    if not objs:
        return True
    connection = connections[using]
    fields = [f for f in objs[0]._meta.concrete_fields if not f.generated]
    sql, steps = _plan(connection, fields)
    rows = [row(obj, steps) for obj in objs]
    if any(values is None for values in rows):
        return False
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        if connection.vendor == "postgresql":
            _copy(connection, fields, chunk)
        else:
            with connection.cursor() as cursor:
                cursor.executemany(sql, chunk)
    return True


def _copy(connection: Any, fields: Sequence[models.Field], rows: list[list[Any]]) -> None:
    quote = connection.ops.quote_name
    table = quote(fields[0].model._meta.db_table)
    columns = ", ".join(quote(field.column) for field in fields)
    sql = f"COPY {table} ({columns}) FROM STDIN"
    start = time.monotonic()
    # COPY is psycopg's own API, under Django's cursor: errors are still raised as
    # Django's DatabaseError, and the statement is logged as Django logs its own.
    with (
        connection.cursor() as cursor,
        connection.wrap_database_errors,
        cursor.cursor.copy(sql) as copy,
    ):
        for values in rows:
            copy.write_row(values)
    if connection.queries_logged:
        connection.queries_log.append(
            {"sql": f"{sql} ({len(rows)} rows)", "time": f"{time.monotonic() - start:.3f}"}
        )
