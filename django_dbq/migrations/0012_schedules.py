"""The schedules of periodic jobs and the ticks they fired (docs/scheduling.rst)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('django_dbq', '0011_operations'),
    ]

    operations = [
        migrations.CreateModel(
            name='Schedule',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('name', models.CharField(max_length=100, unique=True)),
                ('job_name', models.CharField(max_length=100)),
                ('cron', models.CharField(blank=True, help_text='5 fields, as crontab(5).', max_length=200)),
                ('every_seconds', models.PositiveIntegerField(blank=True, help_text='Instead of cron: a tick every N seconds.', null=True)),
                ('timezone', models.CharField(default='UTC', max_length=64)),
                ('workspace', models.JSONField(blank=True, default=dict)),
                ('queue_name', models.CharField(default='default', max_length=64)),
                ('priority', models.IntegerField(default=0)),
                ('missed', models.CharField(choices=[('once', 'once: run one job for the ticks missed'), ('skip', 'skip: run none for the ticks missed')], default='once', max_length=8)),
                ('enabled', models.BooleanField(default=True)),
                ('from_settings', models.BooleanField(default=False, editable=False)),
                ('created', models.DateTimeField()),
                ('modified', models.DateTimeField()),
                ('last_tick', models.DateTimeField(blank=True, editable=False, null=True)),
                ('last_fired_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('last_job_id', models.UUIDField(blank=True, editable=False, null=True)),
            ],
            options={
                'db_table': 'django_dbq_schedule',
                'ordering': ['name'],
            },
        ),
        migrations.CreateModel(
            name='ScheduleTick',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('tick', models.DateTimeField()),
                ('job_id', models.UUIDField()),
                ('fired_at', models.DateTimeField()),
                ('fired_by', models.CharField(blank=True, max_length=128)),
                ('schedule', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='ticks', to='django_dbq.schedule')),
            ],
            options={
                'db_table': 'django_dbq_schedule_tick',
                'ordering': ['schedule', 'tick'],
                'constraints': [models.UniqueConstraint(fields=('schedule', 'tick'), name='django_dbq_tick_once')],
            },
        ),
    ]
