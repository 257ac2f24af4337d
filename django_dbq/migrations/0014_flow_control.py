"""Flow control: the rows limited job types and queues take turns on (with their token buckets), and requests to cancel running jobs (docs/flow-control.rst)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('django_dbq', '0013_unique_jobs'),
    ]

    operations = [
        migrations.CreateModel(
            name='CancelRequest',
            fields=[
                ('job_id', models.UUIDField(primary_key=True, serialize=False)),
                ('requested_at', models.DateTimeField()),
                ('requested_by', models.CharField(blank=True, max_length=255)),
            ],
            options={
                'db_table': 'django_dbq_cancel_request',
            },
        ),
        migrations.CreateModel(
            name='FlowLimit',
            fields=[
                ('key', models.CharField(max_length=128, primary_key=True, serialize=False)),
                ('tokens', models.FloatField(default=0.0)),
                ('refilled_at', models.DateTimeField()),
            ],
            options={
                'db_table': 'django_dbq_flow_limit',
            },
        ),
    ]
