"""tests/two_databases/ needs tests.settings_two_databases (two databases); under the
main suite's settings it is collected only through tests/test_two_databases.py, which
runs it in a pytest subprocess of its own."""

from django.conf import settings

if "queue" not in settings.DATABASES:
    collect_ignore_glob = ["test_*.py"]
