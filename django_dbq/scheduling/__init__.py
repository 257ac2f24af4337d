"""Periodic jobs fired by the workers: the schedule table kept in step with the
``DBQ_SCHEDULES`` setting, and each tick fired exactly once (see
docs/scheduling.rst). A layer of its own, between the operators' tools and the
runtime: the worker's scheduler (:mod:`django_dbq.runtime.scheduler`)
calls it; the admin and the ``schedules`` command read through it."""
