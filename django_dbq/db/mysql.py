"""MySQL 8 / MariaDB 10.6+: ``SELECT ... FOR UPDATE SKIP LOCKED``, then ``UPDATE``,
in one short transaction.

InnoDB locks every row a scan touches, so each candidate query has one equality
per index column (one state, one queue) and is read in index order: a scan must
not sort (``state IN (...)`` would). The best ``limit`` rows of their union are
claimed; the few extra rows locked are released at commit.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Q

from ..states import RUNNABLE_STATES
from . import base


class MySQLBackend(base.Backend):
    vendor = "mysql"

    def claim(self, model, owner, queues, limit, now, expires, cursor=None, names=None):
        manager = model._default_manager.db_manager(self.connection.alias)
        names = names or base.Names()
        candidates = [
            names.apply(manager.filter(state=state, batch_key__isnull=True, queue_name=queue))
            .filter(Q(run_after__isnull=True) | Q(run_after__lte=now))
            .order_by("-priority", "created")
            for state in RUNNABLE_STATES
            for queue in queues
        ]
        jobs = self._select_then_update(model, owner, candidates, limit, now, expires)
        jobs.sort(key=base.order_key)
        return jobs

    def claim_batch(self, model, owner, name, queue, batch_key, size, now, expires):
        manager = model._default_manager.db_manager(self.connection.alias)
        candidates = [
            manager.filter(state=state, name=name, queue_name=queue, batch_key=batch_key)
            .filter(Q(run_after__isnull=True) | Q(run_after__lte=now))
            .order_by("created")
            for state in RUNNABLE_STATES
        ]
        jobs = self._select_then_update(model, owner, candidates, size, now, expires)
        jobs.sort(key=lambda job: job.created)
        return jobs

    def _select_then_update(self, model, owner, candidates, limit, now, expires) -> list[Any]:
        using = self.connection.alias
        with transaction.atomic(using=using):
            found: list[Any] = []
            for queryset in candidates:
                found += list(queryset.select_for_update(skip_locked=True)[:limit])
            if not found:
                return []
            order = candidates[0].query.order_by
            found.sort(key=base.order_key if order[0] == "-priority" else lambda j: j.created)
            jobs = found[:limit]
            model._default_manager.db_manager(using).filter(pk__in=[j.pk for j in jobs]).update(
                **base.claimed_values(owner, now, expires)
            )
        for job in jobs:
            job.attempts += 1
        base.fill_claimed(jobs, owner, now, expires)
        return jobs
