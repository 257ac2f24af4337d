from django.apps import AppConfig


class DjangoDbqConfig(AppConfig):
    """Registers django_dbq's system checks."""

    name = "django_dbq"
    label = "django_dbq"
    verbose_name = "Database job queue"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the checks)
