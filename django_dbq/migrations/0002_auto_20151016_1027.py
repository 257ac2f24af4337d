"""django-db-queue's 0002: jobs in creation order."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("django_dbq", "0001_initial")]

    operations = [
        migrations.AlterModelOptions(name="job", options={"ordering": ["created"]}),
    ]
