"""One index for context objects, (context_type, context_id), in place of the
foreign key's own index on context_type alone.

Most jobs have no context object. On PostgreSQL and SQLite the new index is
partial (``WHERE context_type_id IS NOT NULL``), so those jobs add nothing to
it: every INSERT, and every UPDATE that PostgreSQL cannot do in place (a claim,
a completion), writes one index fewer. It also serves ``Job.objects.for_object``
and ``latest_for`` with one index range instead of a filter on context_id.

On MySQL/MariaDB indexes cannot be partial; the composite index replaces the
one InnoDB made for the foreign key (a foreign key needs an index whose first
column is its own, and this one is).

The SQL is written out here, not taken from the model, because it differs by
database. SQLite rebuilds a table to alter it, and a rebuild drops indexes the
model does not declare: a later migration that rebuilds the job table must
create this index again (as 0003 does for those of 0002).
"""

from django.db import migrations, models

INDEX = "django_dbq_context"
TABLE = "django_dbq_job"


def _single_column_indexes(schema_editor, column):
    """Names of the plain (non-unique, non-primary) indexes on ``column`` alone."""
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, TABLE)
    return [
        name
        for name, info in constraints.items()
        if info["index"] and info["columns"] == [column]
        and not info["unique"] and not info["primary_key"] and name != INDEX
    ]


def _drop_index(schema_editor, name):
    quote = schema_editor.quote_name
    if schema_editor.connection.vendor == "mysql":
        schema_editor.execute(f"ALTER TABLE {quote(TABLE)} DROP INDEX {quote(name)}")
    else:
        schema_editor.execute(f"DROP INDEX IF EXISTS {quote(name)}")


def _has_index(schema_editor, name):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        return name in connection.introspection.get_constraints(cursor, TABLE)


def add_context_index(apps, schema_editor):
    quote = schema_editor.quote_name
    partial = schema_editor.connection.vendor in ("postgresql", "sqlite")
    if not _has_index(schema_editor, INDEX):  # a run cut off before the drop below
        schema_editor.execute(
            f"CREATE INDEX {quote(INDEX)} ON {quote(TABLE)} "
            f"({quote('context_type_id')}, {quote('context_id')})"
            + (f" WHERE {quote('context_type_id')} IS NOT NULL" if partial else "")
        )
    # Then the old index: on MySQL the foreign key now has the new one to use.
    for name in _single_column_indexes(schema_editor, "context_type_id"):
        _drop_index(schema_editor, name)


def remove_context_index(apps, schema_editor):
    quote = schema_editor.quote_name
    # First the foreign key's own index back (MySQL will not drop the only one it has).
    schema_editor.execute(
        f"CREATE INDEX {quote(TABLE + '_context_type_id')} "
        f"ON {quote(TABLE)} ({quote('context_type_id')})"
    )
    _drop_index(schema_editor, INDEX)


class Migration(migrations.Migration):
    # MySQL cannot run DDL inside a transaction.
    atomic = False
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_dbq", "0003_state_check"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunPython(add_context_index, remove_context_index),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="job",
                    name="context_type",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=models.deletion.CASCADE,
                        related_name="+",
                        to="contenttypes.contenttype",
                    ),
                ),
            ],
        ),
    ]
