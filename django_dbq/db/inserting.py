"""Writing new job rows: one cached INSERT statement, and COPY for bulk on PostgreSQL.

Enqueueing is on the caller's request path, so it is kept short. Django's ORM
compiles a new INSERT for every ``save()`` and converts every value through its
field (about half of the Python time of an enqueue, for a row of nineteen
columns). Here the statement is built once per database and column list, and
values a driver takes as they are (strings, integers, ``None``) skip the
conversion; the others (ids, dates, JSON) go through their Django field as
before, so rows are written exactly as the ORM would write them. On PostgreSQL
with psycopg 3 the values travel beside the statement rather than quoted into it
(the PostgreSQL backend's ``insert_cursor``). What differs by database (COPY, the
cursor) comes from the connection's backend; this module is the same for all.

``Job.save()`` of a new job calls :func:`insert_one` directly when no
``pre_save``/``post_save`` receiver could notice (see ``Job._insert_new``);
otherwise Django's save runs as usual and only its last step, the INSERT,
comes from here.
"""

from __future__ import annotations

import dataclasses
import datetime
import operator
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.db import connections, models

from . import backend_for

# Fields whose values the database drivers take as they are when they have this type.
_PLAIN: dict[type[models.Field], type] = {
    models.CharField: str,
    models.TextField: str,
    models.IntegerField: int,
    models.PositiveIntegerField: int,
}

Convert = Callable[[Any, Any], Any]
Check = tuple[int, "type | None", bool, bool, Convert]


@dataclasses.dataclass(frozen=True)
class _Plan:
    """How to write rows of one column list on one connection."""

    sql: str  # INSERT ... VALUES (%s, ...)
    copy_sql: str  # COPY ... FROM STDIN, the same columns (PostgreSQL)
    get: Callable[[models.Model], Any]  # the attribute values of every column, in one call
    stamped: list[tuple[int, models.Field]]  # auto_now and the like: the field decides
    # Per column: index, the type that passes as it is, nullable, aware datetimes pass,
    # and the field's own conversion for everything else.
    checks: list[Check]
    # insert_one's plans without the NULL columns, by which columns are NULL.
    narrowed: dict[tuple[bool, ...], tuple[_Plan, Callable[[list[Any]], Any]]] = dataclasses.field(
        default_factory=dict
    )


_plans: dict[tuple[str, bool, str, tuple[str, ...]], _Plan] = {}


def _plain_type(field: models.Field, connection: Any) -> type | None:
    if isinstance(field, models.UUIDField) and connection.features.has_native_uuid_field:
        return uuid.UUID
    return None if isinstance(field, models.ForeignKey) else _PLAIN.get(type(field))


def _stamped(field: models.Field) -> bool:
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return True
    return not isinstance(field, models.DateField) and (
        type(field).pre_save is not models.Field.pre_save
    )


def _passes_datetimes(connection: Any) -> bool:
    """Whether the backend hands aware datetimes to its driver unchanged."""
    sample = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    return settings.USE_TZ and connection.ops.adapt_datetimefield_value(sample) is sample


def _plan(connection: Any, fields: Sequence[models.Field]) -> _Plan:
    table = fields[0].model._meta.db_table
    key = (connection.alias, settings.USE_TZ, table, tuple(field.column for field in fields))
    plan = _plans.get(key)
    if plan is None:
        quote = connection.ops.quote_name
        table = quote(table)
        columns = ", ".join(quote(field.column) for field in fields)
        aware = _passes_datetimes(connection)
        get = operator.attrgetter(*(field.attname for field in fields))
        plan = _plans[key] = _Plan(
            sql=f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})",
            copy_sql=f"COPY {table} ({columns}) FROM STDIN",
            get=get if len(fields) > 1 else lambda obj: (get(obj),),
            stamped=[(i, field) for i, field in enumerate(fields) if _stamped(field)],
            checks=[
                (
                    i,
                    _plain_type(field, connection),
                    field.null,
                    aware and isinstance(field, models.DateTimeField),
                    field.get_db_prep_save,
                )
                for i, field in enumerate(fields)
            ],
        )
    return plan


def _db_value(check: Check, value: Any, connection: Any) -> Any:
    """``value`` as the driver gets it for the column of ``check``."""
    _, plain, nullable, aware, convert = check
    kind = type(value)
    if kind is plain or (value is None and nullable):
        return value
    if aware and kind is datetime.datetime and value.tzinfo is not None:
        return value
    return convert(value, connection)


def row(obj: models.Model, plan: _Plan, connection: Any) -> list[Any] | None:
    """The values of ``obj`` as its INSERT writes them (``None`` if one is an
    expression, which only the ORM can compile)."""
    values = list(plan.get(obj))
    for index, field in plan.stamped:
        values[index] = field.pre_save(obj, add=True)
    for check in plan.checks:
        value = values[check[0]]
        if hasattr(value, "resolve_expression"):
            return None
        values[check[0]] = _db_value(check, value, connection)
    return values


def insert_one(obj: models.Model, fields: Sequence[models.Field], using: str) -> bool:
    """INSERT ``obj`` with the cached statement; False (nothing written) if a value is
    an expression and the ORM must compile this one.

    Nullable columns whose value is NULL are left out of the statement (a column
    without a database default is NULL when it is not given): most of a new job's
    columns are, and each one left out is a parameter less to send and parse. A
    NULL for a NOT NULL column is still sent, for the database to refuse.
    """
    connection = connections[using]
    plan = _plan(connection, fields)
    values = row(obj, plan, connection)
    if values is None:
        return False
    if None in values:
        nulls = tuple(value is None for value in values)
        narrowed = plan.narrowed.get(nulls)
        if narrowed is None:
            given = [
                i
                for i, field in enumerate(fields)
                if not nulls[i] or not field.null or field.has_db_default()
            ]
            pick = operator.itemgetter(*given)
            narrowed = plan.narrowed[nulls] = (
                _plan(connection, [fields[i] for i in given]),
                pick if len(given) > 1 else lambda values: (pick(values),),
            )
        plan, pick = narrowed
        values = pick(values)
    with backend_for(connection).insert_cursor() as cursor:
        cursor.execute(plan.sql, values)
    return True


def insert_many(objs: Sequence[models.Model], using: str, batch_size: int) -> bool:
    """INSERT every object of ``objs`` (one model): COPY on PostgreSQL, multi-row
    ``executemany`` elsewhere, ``batch_size`` rows per call, in the caller's
    transaction. False (nothing written) if a value is an expression."""
    if not objs:
        return True
    connection = connections[using]
    plan = _plan(connection, fields_of(objs[0]))
    rows = [row(obj, plan, connection) for obj in objs]
    if any(values is None for values in rows):
        return False
    write_rows(plan, rows, using, batch_size)  # type: ignore[arg-type]
    return True


def fields_of(obj: models.Model) -> list[models.Field]:
    """The columns an INSERT of ``obj`` writes, as ``Model.save`` lists them."""
    return [field for field in obj._meta.concrete_fields if not field.generated]


class Template:
    """Many rows that differ from one object's row in a few columns (``bulk_enqueue``).

    ``set(values, value, *attnames)`` converts ``value`` as ``row()`` would, once,
    for columns of the same field type.
    """

    def __init__(self, obj: models.Model, using: str) -> None:
        fields = fields_of(obj)
        self.using = using
        self.connection = connections[using]
        self.plan = _plan(self.connection, fields)
        base = row(obj, self.plan, self.connection)
        if base is None:
            raise ValueError("A bulk enqueue's fields cannot be expressions.")
        self.base = base
        self.index = {field.attname: i for i, field in enumerate(fields)}

    def new_row(self) -> list[Any]:
        return self.base.copy()

    def set(self, values: list[Any], value: Any, *attnames: str) -> None:
        indexes = [self.index[attname] for attname in attnames]
        converted = _db_value(self.plan.checks[indexes[0]], value, self.connection)
        for index in indexes:
            values[index] = converted

    def write(self, rows: list[list[Any]], batch_size: int) -> None:
        write_rows(self.plan, rows, self.using, batch_size)


def write_rows(plan: _Plan, rows: list[list[Any]], using: str, batch_size: int) -> None:
    """Write prepared rows, ``batch_size`` per call: COPY on PostgreSQL, ``executemany``
    elsewhere."""
    backend = backend_for(connections[using])
    for start in range(0, len(rows), batch_size):
        backend.write_rows(plan.sql, plan.copy_sql, rows[start : start + batch_size])
