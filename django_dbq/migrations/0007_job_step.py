"""``Job.step``: the position of ``next_task`` in its chain.

A chain may list the same task more than once (``[a, b, a, c]``); the next step
used to be found from the path alone, which always found the first ``a`` and
looped. Rows that have no step (written before this migration, or by another
system) run from the first position of their ``next_task``, as before. A
nullable column without a default is added in place on every database (SQLite
does not rebuild the table, so the indexes of migration 0002 stay).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("django_dbq", "0006_lease_index_by_state")]

    operations = [
        migrations.AddField(
            model_name="job",
            name="step",
            field=models.PositiveSmallIntegerField(
                blank=True,
                editable=False,
                help_text="Position of next_task in its chain (NULL: its first position).",
                null=True,
            ),
        ),
    ]
