"""tests.settings without django.contrib.contenttypes (nor the apps that need it)."""

from tests.settings import *  # noqa: F403

INSTALLED_APPS = ["django_dbq"]
