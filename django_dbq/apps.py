from django.apps import AppConfig, apps
from django.core.exceptions import ImproperlyConfigured


class DjangoDbqConfig(AppConfig):
    """Registers django_dbq's system checks and plugs in its integrations.

    The integrations sit above the model and are never imported by it: the
    synchronous mode receives :data:`django_dbq.signals.run_synchronously`, and
    ``Job.objects.track`` is :func:`django_dbq.integrations.tracking.track`, and
    ``Job.cancel`` is :func:`django_dbq.store.cancel`.
    """

    name = "django_dbq"
    label = "django_dbq"
    verbose_name = "Database job queue"
    default_auto_field = "django.db.models.AutoField"

    def import_models(self) -> None:
        # Checked before the model is imported: its context object is a foreign key to
        # ContentType, and Django's own error for a missing contenttypes app is a
        # RuntimeError from deep inside the import that does not say what to do.
        if not apps.is_installed("django.contrib.contenttypes"):
            raise ImproperlyConfigured(
                "django_dbq needs 'django.contrib.contenttypes' in INSTALLED_APPS (jobs "
                "can refer to any model instance through it): add it to INSTALLED_APPS."
            )
        super().import_models()

    def ready(self) -> None:
        from . import (
            checks,  # noqa: F401  (registers the checks)
            signals,
            store,
        )
        from .integrations import synchronous, tracking
        from .models import JobManager

        signals.run_synchronously.connect(
            synchronous.run_at_commit, dispatch_uid="django_dbq.synchronous"
        )
        JobManager.tracker = staticmethod(tracking.track)
        JobManager.canceller = staticmethod(store.cancel)
