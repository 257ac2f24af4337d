import os

from django.apps import AppConfig


class BenchmarksConfig(AppConfig):
    name = "tests.benchmarks"
    label = "dbq_bench"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Figure 11: the worker counts the statements it sends (tests/benchmarks/census.py).
        if os.environ.get("BENCH_STATEMENT_CENSUS"):
            from tests.benchmarks import census

            census.install(os.environ["BENCH_STATEMENT_CENSUS"])
