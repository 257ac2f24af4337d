"""The benchmark suite: ``python -m tests.benchmarks --db postgres --out results.json``.

Scripts that print a table and write JSON; never part of the pytest run (no
module here is named ``test_*``). See docs/performance.rst for what each figure
measures and how the peers (django-tasks-db, a bare psycopg loop) are run.
"""
