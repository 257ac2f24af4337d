"""The Job model, its intent-named QuerySet, and the validation of new jobs.

Nothing here changes the state of an existing job: every such write is in
:mod:`django_dbq.store`. Two integrations plug in from ``AppConfig.ready()``
rather than being imported here: the synchronous mode listens to
:data:`django_dbq.signals.run_synchronously`, and ``Job.objects.track`` calls
:attr:`JobManager.tracker` (:func:`django_dbq.integrations.tracking.track`).
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, models, router, transaction
from django.db.models import Count, Q
from django.db.models.signals import post_save, pre_save
from django.utils import timezone

from . import conf, job_types, options, signals
from .db import inserting
from .exceptions import InvalidJobError, InvalidWorkspaceError, JobCancelledError
from .states import FINISHED_STATES, RUNNABLE_STATES, JobStates

QUEUE_NAME_MAX_LENGTH = 64
BATCH_KEY_MAX_LENGTH = 100
UNIQUE_KEY_MAX_LENGTH = 200
# How often a unique job's insert is tried again when the job it collided with
# finished before it could be read.
UNIQUE_INSERT_TRIES = 5
BULK_BATCH_SIZE = 1000
DELETE_BATCH_SIZE = 1000


class ContextObjectField(GenericForeignKey):
    """The generic foreign key of a job's context object, for a queue that may live
    in another database than the object (``DBQ_DATABASE``).

    A content type id means something only in the database whose
    ``django_content_type`` table it comes from, and a job's ``context_type`` is a
    foreign key to the table of the job's own database. So the content type of an
    assigned object is looked up (by app label and model name, created if missing)
    in the job's database, and the object itself is read from its own model's
    database (the routers decide), not from the job's. With one database, this is
    Django's ``GenericForeignKey``.
    """

    def contribute_to_class(self, cls: Any, name: str, **kwargs: Any) -> None:
        super().contribute_to_class(cls, name, **kwargs)
        # Django 5.2's field is its own descriptor, Django 6's installs a
        # GenericForeignKeyDescriptor: either way, ours takes its place.
        setattr(cls, name, _ContextObjectDescriptor(self))


class _ContextObjectDescriptor:
    """``job.context_object``: see :class:`ContextObjectField`."""

    def __init__(self, field: ContextObjectField) -> None:
        self.field = field

    def __set__(self, instance: Any, value: Any) -> None:
        field = self.field
        content_type = pk = None
        if value is not None:
            using = instance._state.db or router.db_for_write(type(instance), instance=instance)
            content_type = ContentType.objects.db_manager(using).get_for_model(
                value, for_concrete_model=field.for_concrete_model
            )
            pk = value.pk
        setattr(instance, field.ct_field, content_type)
        setattr(instance, field.fk_field, pk)
        field.set_cached_value(instance, value)

    def __get__(self, instance: Any, cls: Any = None) -> Any:
        if instance is None:
            return self
        field = self.field
        ct_id = getattr(instance, field.model._meta.get_field(field.ct_field).attname, None)
        pk_val = getattr(instance, field.fk_field)
        rel_obj = field.get_cached_value(instance, default=None)
        if rel_obj is None and field.is_cached(instance):
            return rel_obj
        if rel_obj is not None:
            if ct_id is not None:
                content_type = field.get_content_type(id=ct_id, using=instance._state.db)
                model = type(rel_obj)
                if field.for_concrete_model:
                    model = model._meta.concrete_model
                if (
                    content_type.model_class() is model
                    and rel_obj._meta.pk.to_python(pk_val) == rel_obj.pk
                ):
                    return rel_obj
            rel_obj = None
        if ct_id is not None:
            content_type = field.get_content_type(id=ct_id, using=instance._state.db)
            model = content_type.model_class()
            if model is not None:
                # The object's own database, not the job's: no instance hint.
                objects = model._base_manager.db_manager(router.db_for_read(model))
                rel_obj = objects.filter(pk=pk_val).first()
        field.set_cached_value(instance, rel_obj)
        return rel_obj


def _runnable_now(now: datetime.datetime | None = None) -> Q:
    return Q(run_after__isnull=True) | Q(run_after__lte=now or timezone.now())


class JobQuerySet(models.QuerySet["Job"]):
    """Queries named for what they are for."""

    def runnable(self, *, now: datetime.datetime | None = None) -> JobQuerySet:
        """Jobs a worker may start now: NEW or READY, and not deferred to the future."""
        return self.filter(state__in=RUNNABLE_STATES).filter(_runnable_now(now))

    def waiting(self) -> JobQuerySet:
        """Jobs waiting to run (NEW or READY), including those deferred to the future."""
        return self.filter(state__in=RUNNABLE_STATES)

    def in_queues(self, queues: Iterable[str]) -> JobQuerySet:
        return self.filter(queue_name__in=list(queues))

    def processing(self) -> JobQuerySet:
        return self.filter(state=JobStates.PROCESSING)

    def held_by(self, owner: str) -> JobQuerySet:
        """Jobs a given worker holds: the guard every worker write goes through."""
        return self.filter(state=JobStates.PROCESSING, lease_owner=owner)

    def lease_expired(self, *, now: datetime.datetime | None = None) -> JobQuerySet:
        """PROCESSING jobs whose worker stopped renewing their lease, or that have no
        lease at all (set PROCESSING by hand or by another system): nobody renews them."""
        lapsed = Q(lease_expires_at__lt=now or timezone.now()) | Q(lease_expires_at__isnull=True)
        return self.filter(lapsed, state=JobStates.PROCESSING)

    def finished(self) -> JobQuerySet:
        return self.filter(state__in=FINISHED_STATES)

    def finished_before(self, cutoff: datetime.datetime) -> JobQuerySet:
        return self.finished().filter(created__lt=cutoff)

    def for_object(self, obj: models.Model) -> JobQuerySet:
        """Jobs whose context object is ``obj`` (any model; its key is stored as text)."""
        # The content type of the jobs' database (DBQ_DATABASE), which may not be obj's.
        content_type = ContentType.objects.db_manager(self.db).get_for_model(obj)
        return self.filter(context_type=content_type, context_id=str(obj.pk))

    def latest_for(self, obj: models.Model, name: str) -> Job | None:
        """The most recently created job called ``name`` for ``obj``, or ``None``."""
        return self.for_object(obj).filter(name=name).order_by("-created").first()

    def cancel(self, by: str = "") -> Any:
        """Cancel these jobs (see :func:`django_dbq.store.cancel`): waiting ones end
        FAILED now, running ones are asked to stop. Returns what was done."""
        return JobManager.canceller(list(self.values_list("pk", flat=True)), by or "code")

    def cancel_pending(self) -> int:
        """Delete the jobs of this queryset that have not started (NEW or READY).

        Jobs a worker holds are left alone. Returns how many were deleted.
        """
        return self.filter(state__in=RUNNABLE_STATES).delete()[0]

    def create(self, **kwargs: Any) -> Job:
        """Create a job (validated; see :meth:`Job.prepare_for_insert`).

        With a ``unique_key`` (or a job type whose JOBS entry has ``"unique"``), a job
        is inserted only if no job of the same name and key is waiting or running
        (or, with ``unique_for=<seconds>``, finished that recently): otherwise that
        job is returned, with ``duplicate`` set to True.
        """
        unique_for = kwargs.pop("unique_for", None)
        if unique_for is not None and not options.seconds(0).valid(unique_for):
            raise InvalidJobError(
                f"unique_for must be {options.seconds(0).expected}, not {unique_for!r}."
            )
        job = self.model(**kwargs)
        job._unique_for = unique_for
        self._for_write = True
        job.save(force_insert=True, using=self.db)
        return job

    def bulk_create(self, objs: Iterable[Job], *args: Any, **kwargs: Any) -> list[Job]:
        """Django's ``bulk_create``, with every job validated and prepared first.

        Called with no option but ``batch_size``, the rows are written by
        :func:`django_dbq.db.inserting.insert_many` (COPY on PostgreSQL) in one
        transaction; other options (conflict handling) go through Django's own.

        Jobs with a unique key are inserted one by one, as ``create()`` does: one
        whose key is held by an active job (or by an earlier job of the same call)
        is not inserted, and its object becomes that job (``duplicate`` True). The
        objects are returned in the order given.
        """
        objs = list(objs)
        self._for_write = True  # as Django's bulk_create: self.db is the write database
        for job in objs:
            job.prepare_for_insert(run_hook=False)  # every job valid before any hook
        keyed = [job for job in objs if job.unique_key is not None]
        plain = [job for job in objs if job.unique_key is None]
        for job in plain:
            job.run_creation_hook()
        if not keyed:
            created = self._fast_bulk_create(plain, *args, **kwargs)
            if created is None:
                created = super().bulk_create(plain, *args, **kwargs)
            if conf.run_synchronously():
                _run_synchronously([job.pk for job in created], self.db)
            return created
        if args or any(kwargs.get(k) for k in kwargs if k != "batch_size"):
            raise InvalidJobError("bulk_create of jobs with unique keys takes no conflict options.")
        with transaction.atomic(using=self.db):
            self._bulk_create_keyed(keyed, kwargs.get("batch_size"))
            if plain and self._fast_bulk_create(plain, **kwargs) is None:
                super().bulk_create(plain, **kwargs)
        if conf.run_synchronously() and plain:
            _run_synchronously([job.pk for job in plain], self.db)
        return objs

    def _bulk_create_keyed(self, keyed: list[Job], batch_size: int | None) -> None:
        """Insert jobs with unique keys in bulk: the holders of their keys are read in
        one query per chunk, the rest inserted at once (in a savepoint); if another
        process took one of the keys meanwhile, they are inserted one by one."""
        using = self.db
        first_of: dict[str, Job] = {}
        for job in keyed:
            first_of.setdefault(job.active_key, job)  # type: ignore[arg-type]
        firsts = list(first_of.values())
        holders: dict[str, Job] = {}
        for start in range(0, len(firsts), BULK_BATCH_SIZE):
            keys = [job.active_key for job in firsts[start : start + BULK_BATCH_SIZE]]
            holders.update(
                (job.active_key, job)
                for job in Job.objects.using(using).filter(active_key__in=keys)
            )
        new = []
        for job in firsts:
            holder = holders.get(job.active_key)  # type: ignore[arg-type]
            period = job.unique_period()
            if holder is None and period:
                holder = _holder(job.name, job.unique_key, period, using)
            if holder is not None:
                job._become(holder, using)
            else:
                new.append(job)
        for job in new:
            job.run_creation_hook()
            job.active_key = active_key_of(job.name, job.unique_key)
        try:
            with transaction.atomic(using=using):
                if self._fast_bulk_create(new, batch_size) is None:
                    super().bulk_create(new, batch_size=batch_size)
        except IntegrityError:
            for job in new:  # the savepoint is rolled back: none of them was written
                job._state.adding = True
                job._save_unique(using, hook=False)
        for job in keyed:
            first = first_of[job.active_key]  # type: ignore[index]
            if first is not job:
                job._become(first, using)

    def _fast_bulk_create(
        self, objs: list[Job], batch_size: int | None = None, *args: Any, **options: Any
    ) -> list[Job] | None:
        """Our bulk write, or None where Django's own must run: conflict options, a
        batch size Django refuses, saved jobs or jobs without a primary key."""
        if args or any(options.values()) or (batch_size is not None and batch_size <= 0):
            return None
        if any(not job._state.adding or job.pk is None for job in objs):
            return None
        for job in objs:
            job._prepare_related_fields_for_save(operation_name="bulk_create")
        with transaction.atomic(using=self.db, savepoint=False):
            if not inserting.insert_many(objs, self.db, batch_size or BULK_BATCH_SIZE):
                return None
        for job in objs:
            job._state.adding = False
            job._state.db = self.db
        return objs


class JobManager(models.Manager.from_queryset(JobQuerySet)):  # type: ignore[misc]
    """``Job.objects``: creation with validation, bulk creation and pruning."""

    #: :func:`django_dbq.integrations.tracking.track`, set when the app is ready.
    tracker: Any = None
    #: :func:`django_dbq.store.cancel`, set when the app is ready (the store is above
    #: the model: the model does not import it).
    canceller: Any = None

    def track(self, name: str, **kwargs: Any) -> Any:
        """Context manager recording an in-process operation as a job; see
        :func:`django_dbq.integrations.tracking.track`."""
        return self.tracker(name, using=self._write_db(), **kwargs)

    def bulk_create_jobs(
        self,
        jobs_to_create: Iterable[Job | Mapping[str, Any]],
        *,
        batch_size: int = BULK_BATCH_SIZE,
    ) -> list[Job]:
        """Validate, run creation hooks for and insert many jobs: one INSERT per batch.

        Each item is a :class:`Job` or a dict of its fields (``name``, ``workspace``,
        ``queue_name``, ``priority``, ``run_after``). Nothing is written unless every
        job is valid; all batches are inserted in one transaction.
        """
        build = _job_builder()
        objs = [j if isinstance(j, Job) else build(j) for j in jobs_to_create]
        using = self._write_db()
        with transaction.atomic(using=using):
            # JobQuerySet.bulk_create prepares (validates, runs the creation hook of)
            # every job before inserting any; preparing here too would run hooks twice.
            return self.db_manager(using).get_queryset().bulk_create(objs, batch_size=batch_size)

    def bulk_enqueue(
        self,
        name: str,
        workspaces: Iterable[Mapping[str, Any]],
        *,
        queue_name: str = "default",
        priority: int = 0,
        run_after: datetime.datetime | None = None,
        batch_key: str | None = None,
        batch_size: int = BULK_BATCH_SIZE,
    ) -> list[uuid.UUID]:
        """Create one job of type ``name`` per workspace; return their ids, in order.

        The fastest way to enqueue many jobs of one type: the name and the other
        fields are validated once, each workspace is validated and serialised
        once, and no ``Job`` instances are built. Nothing is written unless every
        workspace is valid; all rows are written in one transaction, ``batch_size``
        per statement (``COPY`` on PostgreSQL). A job type with a creation hook
        needs each job as a ``Job``, and a job type with unique keys checks each
        one: their jobs go through :meth:`bulk_create_jobs` (the id of a duplicate
        is the id of the job that holds its key).
        """
        job_type = job_types.get_job_type(name)
        if job_type.creation_hook or job_type.unique is not None:
            made = self.bulk_create_jobs(
                [
                    {
                        "name": name,
                        "workspace": workspace,
                        "queue_name": queue_name,
                        "priority": priority,
                        "run_after": run_after,
                        "batch_key": batch_key,
                    }
                    for workspace in workspaces
                ],
                batch_size=batch_size,
            )
            return [job.pk for job in made]
        template = Job(
            name=name,
            queue_name=queue_name,
            priority=priority,
            run_after=run_after,
            batch_key=batch_key,
        )
        template.prepare_for_insert()
        workspaces = list(workspaces)
        for workspace in workspaces:
            validate_workspace(workspace)
        using = self._write_db()
        rows = inserting.Template(template, using)
        ids, values = [], []
        for workspace in workspaces:
            values.append(one := rows.new_row())
            ids.append(pk := uuid.uuid4())
            rows.set(one, pk, "id")
            now = timezone.now()  # one by one, so that the jobs run in this order
            rows.set(one, now, "created", "modified")
            rows.set(one, workspace, "workspace")  # as the ORM writes it
        with transaction.atomic(using=using, savepoint=False):
            rows.write(values, batch_size)
        if conf.run_synchronously():
            _run_synchronously(ids, using)
        return ids

    def _write_db(self) -> str:
        """The database alias writes go to (``self.db`` is the one reads go to)."""
        return self._db or router.db_for_write(self.model)

    def delete_old(self, hours: float = 24, *, batch_size: int = DELETE_BATCH_SIZE) -> int:
        """Delete COMPLETED and FAILED jobs created more than ``hours`` ago.

        Works in batches of ``batch_size`` rows, each in its own short statement,
        so a table of millions is pruned without long locks or unbounded memory.
        Returns the number of jobs deleted.
        """
        if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not hours >= 0:
            raise InvalidJobError(f"hours must be a number, zero or more, not {hours!r}.")
        try:
            cutoff = timezone.now() - datetime.timedelta(hours=hours)
        except (OverflowError, ValueError):
            raise InvalidJobError(f"hours={hours!r} reaches back before the year 1.") from None
        total = 0
        while True:
            # Unordered, so that each batch stops at the first rows it finds instead of
            # sorting every old row in the table.
            batch = self.get_queryset().finished_before(cutoff).order_by()
            ids = list(batch.values_list("pk", flat=True)[:batch_size])
            if not ids:
                return total
            total += self.get_queryset().filter(pk__in=ids).finished().delete()[0]
            if len(ids) < batch_size:
                return total


def _job_builder() -> Any:
    """``Job(**fields)`` for many dicts of field values: the defaults are looked up once
    and each job is built from positional values, which Django does faster. A dict with
    other keys (``context_object``, a related instance) goes to ``Job(**fields)``."""
    fields = Job._meta.concrete_fields
    template: list[Any] = []
    calls: list[tuple[int, Any]] = []
    for index, field in enumerate(fields):
        if field.has_default() and callable(field.default):
            calls.append((index, field.default))
            template.append(None)
        else:
            template.append(field.get_default())
    positions = {field.attname: index for index, field in enumerate(fields)}

    def build(values: Mapping[str, Any]) -> Job:
        if not positions.keys() >= values.keys():
            return Job(**values)
        row = template.copy()
        for index, default in calls:
            row[index] = default()
        for name, value in values.items():
            row[positions[name]] = value
        return Job(*row)

    return build


class Job(models.Model):
    """One unit of background work: a row, run by a worker through its JOBS chain."""

    STATES = JobStates

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=job_types.NAME_MAX_LENGTH)
    queue_name = models.CharField(max_length=QUEUE_NAME_MAX_LENGTH, default="default")
    state = models.CharField(max_length=20, choices=JobStates.choices, default=JobStates.NEW)
    next_task = models.CharField(max_length=255, blank=True)
    step = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        editable=False,
        help_text="Position of next_task in its chain (NULL: its first position).",
    )
    workspace = models.JSONField(default=dict, blank=True)
    priority = models.IntegerField(default=0, help_text="Higher runs first.")
    run_after = models.DateTimeField(null=True, blank=True, help_text="Do not run before this.")
    created = models.DateTimeField(default=timezone.now, editable=False)
    modified = models.DateTimeField(auto_now=True)

    attempts = models.PositiveIntegerField(
        default=0, help_text="Attempts started at the current step (reset when a step succeeds)."
    )
    errors = models.JSONField(default=list, blank=True, help_text="One entry per failed attempt.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=128, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    batch_key = models.CharField(
        max_length=BATCH_KEY_MAX_LENGTH,
        null=True,
        blank=True,
        help_text="Jobs of a batch job type are batched per queue and batch key; "
        "NULL for jobs of other types.",
    )
    unique_key = models.CharField(
        max_length=UNIQUE_KEY_MAX_LENGTH,
        null=True,
        blank=True,
        db_index=True,
        editable=False,
        help_text="While a job of this name and key waits or runs, creating another "
        "returns it instead.",
    )
    # The job's name and unique key while it is NEW, READY or PROCESSING, else NULL.
    # A unique index on it (migration 0013, in SQL: partial where the database can)
    # keeps one active job per name and key on every database, MySQL and MariaDB
    # included, which have no partial indexes: there NULLs simply do not collide.
    active_key = models.CharField(
        max_length=UNIQUE_KEY_MAX_LENGTH + 110, null=True, blank=True, editable=False
    )
    # Indexed with context_id by a partial index (migration 0004), not on its own.
    context_type = models.ForeignKey(
        ContentType,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
    )
    context_id = models.CharField(max_length=255, blank=True, default="")
    context_object = ContextObjectField("context_type", "context_id")

    objects = JobManager()

    class Meta:
        ordering = ["-priority", "created"]
        # The indexes differ by database (partial where supported) and so are created
        # by migration 0002 in SQL: one serving the claim, one batch claims, one the
        # lease rescue, one delete_old_jobs.
        constraints = [
            # A row with a state no code knows would never be claimed nor rescued.
            models.CheckConstraint(
                condition=Q(state__in=JobStates.values), name="django_dbq_job_state_known"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.pk} ({self.state})"

    @property
    def job_type(self) -> job_types.JobType:
        """The JOBS definition this job runs under (raises UnknownJobError)."""
        return job_types.get_job_type(self.name)

    #: After ``save()`` of a new job with a unique key: True if it was not inserted
    #: because a job with the key was active (or finished within the key's period),
    #: and this instance is now that job.
    duplicate: bool = False

    def prepare_for_insert(self, *, run_hook: bool = True) -> job_types.JobType:
        """Validate a new job, fill in its first task and unique key, and run its
        creation hook (unless ``run_hook`` is false); return its job type.

        Raises :class:`~django_dbq.exceptions.UnknownJobError`,
        :class:`~django_dbq.exceptions.InvalidWorkspaceError` or
        :class:`~django_dbq.exceptions.InvalidJobError`; nothing is written.
        """
        job_type = job_types.get_job_type(self.name)
        if self.workspace is None:
            self.workspace = {}
        validate_workspace(self.workspace)
        if self.unique_key is None and job_type.unique is not None:
            try:
                self.unique_key = job_type.unique.key_for(self.workspace)
            except (KeyError, IndexError, AttributeError, ValueError, TypeError) as exc:
                raise InvalidJobError(
                    f"The unique key of job type {self.name!r} ({job_type.unique.key!r}) "
                    f"cannot be made from this workspace: {type(exc).__name__}: {exc}."
                ) from None
        validate_fields(self)
        self.active_key = active_key_of(self.name, self.unique_key)
        if run_hook:
            self.run_creation_hook(job_type)
        return job_type

    def cancel(self, by: str = "") -> Any:
        """Cancel this job: at once if it waits; if it runs, its worker is asked to
        stop it (see :func:`django_dbq.store.cancel`)."""
        return JobManager.canceller([self.pk], by or "code")

    def cancel_requested(self) -> bool:
        """Whether someone asked for this running job to be cancelled. A worker learns
        of a request within a heartbeat and sets it here (no query per call); elsewhere
        (the synchronous mode, a test) the request is read from the database."""
        if getattr(self, "_cancel_by", None) is not None:
            return True
        if getattr(self, "_cancel_watched", False):
            return False
        return CancelRequest.objects.filter(job_id=self.pk).exists()

    def checkpoint(self) -> None:
        """Raise :class:`~django_dbq.exceptions.JobCancelledError` if this job was asked
        to stop: call it where a long task can stop safely. The job then ends FAILED,
        cancelled, and is not retried."""
        if self.cancel_requested():
            by = getattr(self, "_cancel_by", None)
            if by is None:
                by = CancelRequest.objects.filter(job_id=self.pk).values_list(
                    "requested_by", flat=True
                ).first() or "someone"
                self._cancel_by = by
            raise JobCancelledError(f"Cancelled by {by} while it ran.")

    def run_creation_hook(self, job_type: job_types.JobType | None = None) -> None:
        """Fill in the first task and run the creation hook (a new job only)."""
        job_type = job_type or job_types.get_job_type(self.name)
        if not self.next_task:
            self.next_task, self.step = job_type.first_task, 0
        if job_type.batch is not None and self.batch_key is None:
            self.batch_key = ""
        if self.batch_key is not None and job_type.batch is None:
            raise InvalidJobError(
                f"batch_key is set but job type {self.name!r} is not a batch job type; "
                'add "batch": {"size": ..., "wait": ...} to its JOBS entry or drop batch_key.'
            )
        if job_type.creation_hook:
            job_types.resolve(job_type.creation_hook)(self)
            validate_workspace(self.workspace)

    def save(self, *args: Any, **kwargs: Any) -> None:
        adding = self._state.adding
        if adding:
            job_type = self.prepare_for_insert(run_hook=False)  # the unique key too
            if self.unique_key is not None:
                self._save_unique(kwargs.get("using"))
                return
            self.run_creation_hook(job_type)
        plain = (
            adding
            and not args
            and kwargs.keys() <= {"force_insert", "using"}
            and isinstance(kwargs.get("force_insert", False), bool)
        )
        if not (plain and self._insert_new(kwargs.get("using"))):
            super().save(*args, **kwargs)
        if adding and conf.run_synchronously():
            _run_synchronously([self.pk], kwargs.get("using") or self._state.db)

    def unique_period(self) -> float:
        """Seconds after a job with this key finished during which it is still
        returned instead of a new one: ``unique_for`` given to ``create()``, else the
        job type's ``"unique": {"for": ...}``, else 0."""
        given = getattr(self, "_unique_for", None)
        if given is not None:
            return float(given)
        rule = job_types.get_job_type(self.name).unique
        return rule.period if rule is not None else 0.0

    def _save_unique(self, using: str | None, *, hook: bool = True) -> None:
        """Insert a new job with a unique key, or become the job that holds the key.

        The database decides: the INSERT (in a savepoint) fails on the unique index
        of ``active_key`` if another active job has the key, and that job is read
        instead. The creation hook runs only if no such job was seen first (in a
        race between two creates, the loser's hook may have run). The job was
        prepared (``prepare_for_insert(run_hook=False)``) by the caller.
        """
        using = using or router.db_for_write(type(self), instance=self)
        period = self.unique_period()
        existing = _holder(self.name, self.unique_key, period, using)
        if existing is not None:
            self._become(existing, using)
            return
        if hook:
            self.run_creation_hook()
        self.active_key = active_key_of(self.name, self.unique_key)
        for _ in range(UNIQUE_INSERT_TRIES):
            try:
                with transaction.atomic(using=using):
                    if not self._insert_new(using):
                        super().save(force_insert=True, using=using)
            except IntegrityError:
                existing = _holder(self.name, self.unique_key, period, using)
                if existing is None:
                    continue  # it finished before we could read it: try again
                self._become(existing, using)
                return
            self.duplicate = False
            if conf.run_synchronously():
                _run_synchronously([self.pk], using)
            return
        raise InvalidJobError(
            f"Could not create a {self.name!r} job with unique key {self.unique_key!r}: "
            f"{UNIQUE_INSERT_TRIES} inserts collided with jobs that finished at once."
        )

    def _become(self, existing: Job, using: str) -> None:
        """Take every value of ``existing``, the job that holds this one's key."""
        for field in self._meta.concrete_fields:
            setattr(self, field.attname, getattr(existing, field.attname))
        self._state.adding = False
        self._state.db = using
        self.duplicate = True

    def _insert_new(self, using: str | None) -> bool:
        """``save()`` of a new job, without ``Model.save``'s general machinery.

        Taken only when nothing could tell the difference: no ``pre_save`` or
        ``post_save`` receiver for this class, no parent model, a primary key
        already set, no expression among the values. It does what ``Model.save``
        does for such an insert (unsaved related object check, router, rollback
        mark inside ``atomic``, the instance's state) in a third of the time.
        False: nothing was written, and the caller saves the usual way.
        """
        cls = type(self)
        if (
            self.pk is None
            or self._meta.parents
            or pre_save.has_listeners(cls)
            or post_save.has_listeners(cls)
        ):
            return False
        self._prepare_related_fields_for_save(operation_name="save")
        using = using or router.db_for_write(cls, instance=self)
        with transaction.mark_for_rollback_on_error(using):
            if not inserting.insert_one(self, inserting.fields_of(self), using):
                return False
        self._state.db = using
        self._state.adding = False
        return True

    def _do_insert(self, manager, using, fields, returning_fields, raw):  # type: ignore[no-untyped-def]
        # The INSERT of save(): one cached statement instead of the ORM's compiler.
        if not returning_fields and not raw and inserting.insert_one(self, fields, using):
            return []
        return super()._do_insert(manager, using, fields, returning_fields, raw)

    def save_tracked(self, *, using: str | None = None) -> None:
        """Insert a row for :func:`django_dbq.tracking.track` (its name need not be in JOBS)."""
        super().save(force_insert=True, using=using or conf.database())

    def fail(self, error: BaseException | str) -> None:
        """In a batch task: mark this job of the batch as failed with ``error``.

        The other jobs of the batch complete as usual; this one is retried or ends
        FAILED according to its job type's ``max_attempts``.
        """
        self._dbq_error = error if isinstance(error, BaseException) else Exception(str(error))

    def update_next_task(self) -> None:
        """Advance ``next_task`` to the step after it (django-db-queue compatibility)."""
        job_type = self.job_type
        step = job_type.step_of(self.next_task, self.step) + 1
        self.next_task = job_type.task_after(self.next_task, self.step) or ""
        self.step = step if self.next_task else None

    def get_failure_hook_name(self) -> str | None:
        return self.job_type.failure_hook

    def get_pre_task_hook_name(self) -> str | None:
        return self.job_type.pre_task_hook

    def get_post_task_hook_name(self) -> str | None:
        return self.job_type.post_task_hook

    def get_creation_hook_name(self) -> str | None:
        return self.job_type.creation_hook

    @staticmethod
    def get_queue_depths(*, exclude_future_jobs: bool = False) -> dict[str, int]:
        """Number of waiting (NEW or READY) jobs per queue name.

        With ``exclude_future_jobs``, jobs whose ``run_after`` is in the future are
        not counted.
        """
        waiting = Job.objects.waiting()
        if exclude_future_jobs:
            waiting = waiting.filter(_runnable_now())
        rows = waiting.order_by().values("queue_name").annotate(count=Count("pk"))
        return {row["queue_name"]: row["count"] for row in rows}


#: Deepest nesting of objects and arrays a workspace may have: MariaDB's JSON limit
#: (PostgreSQL and SQLite allow more; a workspace valid on one database is valid on all).
MAX_WORKSPACE_DEPTH = 32


def validate_workspace(workspace: Any) -> None:
    """Raise :class:`InvalidWorkspaceError` unless ``workspace`` is a dict that every
    supported database stores as it is.

    That is strict JSON (no NaN or Infinity, no NUL characters, no lone
    surrogates), nested at most :data:`MAX_WORKSPACE_DEPTH` deep, and at most
    ``DBQ_MAX_WORKSPACE_BYTES`` long as the JSON text the database receives
    (non-ASCII characters travel as ``\\uXXXX`` escapes, six bytes each).
    """
    if not isinstance(workspace, dict):
        raise InvalidWorkspaceError(
            f"The workspace must be a dict (a JSON object), not {type(workspace).__name__}."
        )
    try:
        text = json.dumps(workspace, allow_nan=False)  # as JSONField writes it
    except (TypeError, ValueError, RecursionError) as exc:
        where = "" if isinstance(exc, RecursionError) else _bad_value_path(workspace)
        raise InvalidWorkspaceError(
            f"The workspace is not JSON-serialisable{where}: {exc}."
        ) from None
    limit = conf.max_workspace_bytes()
    if limit is not None and len(text) > limit:
        raise InvalidWorkspaceError(
            f"The workspace is {len(text)} bytes of JSON; the limit is {limit} "
            "(the DBQ_MAX_WORKSPACE_BYTES setting)."
        )
    if "\\u0000" in text and _contains_nul(workspace):
        raise InvalidWorkspaceError("The workspace contains a NUL character (\\u0000).")
    if "\\ud" in text:  # a surrogate pair (fine) or a lone surrogate (not UTF-8)
        try:
            json.dumps(workspace, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidWorkspaceError(
                "The workspace is not JSON-serialisable: it contains a lone surrogate "
                "(text that is not valid Unicode)."
            ) from None
    if text.count("[") + text.count("{") > MAX_WORKSPACE_DEPTH:
        depth = _depth(workspace)
        if depth > MAX_WORKSPACE_DEPTH:
            raise InvalidWorkspaceError(
                f"The workspace is nested {depth} levels deep; the limit is "
                f"{MAX_WORKSPACE_DEPTH} (MariaDB's)."
            )


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, (list, tuple)):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _bad_value_path(value: Any, path: str = "") -> str:
    """Where the first value JSON cannot hold is, as " at workspace['a'][0]", or ""."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                return f" at workspace{path} (key {key!r})"
            found = _bad_value_path(item, f"{path}[{key!r}]")
            if found:
                return found
        return ""
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _bad_value_path(item, f"{path}[{index}]")
            if found:
                return found
        return ""
    if value is None or isinstance(value, (str, int, bool)):
        return ""
    if isinstance(value, float):
        return (
            ""
            if value == value and value not in (float("inf"), float("-inf"))
            else (f" at workspace{path}")
        )
    return f" at workspace{path} ({type(value).__name__})"


def _contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_contains_nul(v) for v in value)
    return False


def validate_fields(job: Job) -> None:
    """Raise :class:`InvalidJobError` unless the queue, batch key, priority and
    ``run_after`` of a new job are valid (a naive ``run_after`` is made aware)."""
    if not isinstance(job.queue_name, str) or not job.queue_name:
        raise InvalidJobError("queue_name must be a non-empty string.")
    if len(job.queue_name) > QUEUE_NAME_MAX_LENGTH:
        raise InvalidJobError(
            f"queue_name {job.queue_name[:20]!r}... is {len(job.queue_name)} characters long; "
            f"the limit is {QUEUE_NAME_MAX_LENGTH}."
        )
    if job.batch_key is not None and (
        not isinstance(job.batch_key, str) or len(job.batch_key) > BATCH_KEY_MAX_LENGTH
    ):
        raise InvalidJobError(
            f"batch_key must be a string of at most {BATCH_KEY_MAX_LENGTH} characters."
        )
    if job.unique_key is not None and (
        not isinstance(job.unique_key, str)
        or not job.unique_key
        or len(job.unique_key) > UNIQUE_KEY_MAX_LENGTH
        or "\x00" in job.unique_key
    ):
        raise InvalidJobError(
            f"unique_key must be a non-empty string of at most {UNIQUE_KEY_MAX_LENGTH} "
            f"characters (no NUL), not {str(job.unique_key)[:40]!r}."
        )
    if isinstance(job.priority, bool) or not isinstance(job.priority, int):
        raise InvalidJobError(f"priority must be an integer, not {job.priority!r}.")
    if not -(2**31) <= job.priority < 2**31:
        raise InvalidJobError(f"priority {job.priority} is out of range (32-bit signed integer).")
    if job.run_after is not None:
        if not isinstance(job.run_after, datetime.datetime):
            raise InvalidJobError(f"run_after must be a datetime, not {job.run_after!r}.")
        if settings.USE_TZ and timezone.is_naive(job.run_after):
            job.run_after = timezone.make_aware(job.run_after)
        try:
            # Databases store it in UTC: years 1-9999 there, not just in its own zone.
            job.run_after.astimezone(datetime.timezone.utc)
        except (OverflowError, ValueError):
            raise InvalidJobError(
                f"run_after {job.run_after.isoformat()} is out of range in UTC."
            ) from None


def active_key_of(name: str, key: str | None) -> str | None:
    """The ``active_key`` of an active job with this name and unique key: unique per
    name (two job types may use the same key text without colliding)."""
    return None if key is None else f"{len(name)}:{name}:{key}"


def _holder(name: str, key: str | None, period: float, using: str) -> Job | None:
    """The job that holds ``key`` for ``name``: the active one, or, with ``period``,
    the latest that finished within the last ``period`` seconds."""
    jobs = Job.objects.using(using)
    active = jobs.filter(active_key=active_key_of(name, key)).first()
    if active is not None or not period:
        return active
    cutoff = timezone.now() - datetime.timedelta(seconds=period)
    return (
        jobs.filter(name=name, unique_key=key, finished_at__gte=cutoff)
        .order_by("-finished_at")
        .first()
    )


def _run_synchronously(ids: list[Any], using: str | None) -> None:
    """DBQ_RUN_SYNCHRONOUSLY: ask for the new jobs to be run when their transaction
    commits (:mod:`django_dbq.integrations.synchronous` does it)."""
    signals.run_synchronously.send(sender=Job, job_ids=ids, using=using or conf.database())


# The operators' tables live in their own module; importing them here registers them.
from .records import (  # noqa: E402
    CancelRequest,
    Chore,
    FlowLimit,
    MinuteCount,
    QueuePause,
    Schedule,
    ScheduleTick,
    WorkerRecord,
)

__all__ = [
    "CancelRequest",
    "Chore",
    "FlowLimit",
    "Job",
    "JobManager",
    "JobQuerySet",
    "MinuteCount",
    "QueuePause",
    "Schedule",
    "ScheduleTick",
    "WorkerRecord",
    "validate_fields",
    "validate_workspace",
]
