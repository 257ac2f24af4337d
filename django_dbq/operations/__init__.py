"""What operators use to run the queue: the worker registry, queue pauses, the
figures of the dashboard and metrics, and health checks (see docs/operations.rst).

A layer of its own between the store and the runtime: workers heartbeat, honour
pauses and roll up counts through it; the admin, the commands and the metrics
view read through it. It writes only its own tables (:mod:`django_dbq.records`),
never a job's state.
"""
