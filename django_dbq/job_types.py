"""The ``JOBS`` setting, parsed once into frozen :class:`JobType` definitions.

Two forms are accepted for each entry::

    JOBS = {
        "short": ["app.tasks.step_one", "app.tasks.step_two"],
        "long": {
            "tasks": ["app.tasks.step_one"],
            "creation_hook": "app.hooks.on_create",
            "pre_task_hook": "app.hooks.before",
            "post_task_hook": "app.hooks.after",
            "failure_hook": "app.hooks.on_failure",
            "max_attempts": 3,        # retries: 1 means no retry (the default)
            "backoff": 2.0,           # seconds, doubled per attempt, with jitter
            "backoff_max": 3600,      # ... capped here; or a dotted path to f(attempt)
            "lease_seconds": 60,      # overrides DBQ_LEASE_SECONDS for this type
            "unique": "report:{day}", # or {"key": ..., "for": seconds}: see models.py
            "max_running": 3,         # at most 3 running at once, across all workers
            "rate": "50/s",           # at most 50 started per second (or /m, /h)
            "timeout": 30,            # a task running longer fails (and is retried)
        },
    }

The task run for a job is always looked up here from the job's name and step:
a dotted path stored in a database row is never imported unless JOBS lists it.

Besides JOBS, django_dbq defines *built-in* job types of its own in
:data:`BUILTIN_JOB_TYPES` (today one: ``"django_dbq.tasks"``, the jobs of the
django.tasks backend in :mod:`django_dbq.integrations.tasks_backend`). :func:`get_job_type` knows
them; :func:`job_types` stays the parsed JOBS setting; a JOBS entry may not use
a built-in name (django_dbq.E003). A built-in type may name a ``job_options``
function that gives one job its own retry and lease options (see
:func:`job_type_for`).
"""

from __future__ import annotations

import difflib
import logging
import random
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from django.utils.module_loading import import_string

from . import conf, options
from .exceptions import JobConfigurationError, UnknownJobError

HOOK_KEYS = ("creation_hook", "pre_task_hook", "post_task_hook", "failure_hook")
OPTION_KEYS = (
    "max_attempts",
    "backoff",
    "backoff_max",
    "lease_seconds",
    "batch",
    "unique",
    "max_running",
    "rate",
    "timeout",
)
BATCH_SIZE_MAX = 10_000
KNOWN_KEYS = ("tasks", *HOOK_KEYS, *OPTION_KEYS)
# The options a built-in type's job_options function may set for one job.
PER_JOB_OPTION_KEYS = ("max_attempts", "backoff", "backoff_max", "lease_seconds")
NAME_MAX_LENGTH = 100

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a setting (JOBS, DBQ_SCHEDULES, DBQ_QUEUE_LIMITS), as
    reported by the system checks."""

    id: str
    msg: str
    hint: str
    warning: bool = False


def did_you_mean(word: Any, known: Any) -> str:
    """``"Did you mean 'x'? "`` for the closest of ``known`` to ``word``, or ``""``."""
    close = difflib.get_close_matches(str(word), sorted(known), n=1)
    return f"Did you mean {close[0]!r}? " if close else ""


@dataclass(frozen=True)
class Batch:
    """Batching of a job type: its task gets a list of up to ``size`` jobs.

    A batch is taken as soon as ``size`` jobs (of one queue and batch key) are
    runnable, or the oldest of them has waited ``wait`` seconds.
    """

    size: int
    wait: float = 0.0


@dataclass(frozen=True)
class Unique:
    """Unique jobs of a type: while a job with the same key is waiting or running
    (and, with ``period``, for that many seconds after one finished), creating
    another returns it instead. The key is ``key`` formatted with the workspace
    (``"invoice:{invoice_id}"``)."""

    key: str
    period: float = 0.0

    def key_for(self, workspace: Mapping[str, Any]) -> str:
        """The key of a job with this workspace (raises ``KeyError`` and the like)."""
        return self.key.format_map(workspace)


@dataclass(frozen=True)
class JobType:
    """One entry of the ``JOBS`` setting."""

    name: str
    tasks: tuple[str, ...]
    creation_hook: str | None = None
    pre_task_hook: str | None = None
    post_task_hook: str | None = None
    failure_hook: str | None = None
    max_attempts: int = 1
    backoff: float | str = 2.0
    backoff_max: float = 3600.0
    lease_seconds: float | None = None
    batch: Batch | None = None
    unique: Unique | None = None
    # Flow control (docs/flow-control.rst): most jobs of the type running at once across
    # every worker, most started per period ("50/s"), longest run of one task (seconds).
    max_running: int | None = None
    rate: str | None = None
    timeout: float | None = None
    # Built-in job types only (JOBS cannot set it): the dotted path of f(job) -> dict
    # of per-job overrides of PER_JOB_OPTION_KEYS, applied by for_job(). It is called
    # with rows that were not validated, so it must check what it reads from them.
    job_options: str | None = None

    @property
    def first_task(self) -> str:
        return self.tasks[0]

    def step_of(self, task: str, step: int | None = None) -> int:
        """The position of ``task`` in the chain: ``step`` if that is where ``task`` is
        (a chain may list a task more than once), else its first position."""
        if step is not None and 0 <= step < len(self.tasks) and self.tasks[step] == task:
            return step
        return self.tasks.index(task)

    def task_after(self, task: str, step: int | None = None) -> str | None:
        """The task that follows ``task`` (at ``step``) in the chain, or ``None`` after
        the last."""
        index = self.step_of(task, step) + 1
        return self.tasks[index] if index < len(self.tasks) else None

    def lease(self) -> float:
        """The lease length for jobs of this type, in seconds."""
        return self.lease_seconds if self.lease_seconds is not None else conf.lease_seconds()

    def retry_delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1``, after ``attempt`` failed.

        The default is exponential with full jitter: a random delay between half
        and all of ``backoff * 2 ** (attempt - 1)``, capped at ``backoff_max``.
        """
        if isinstance(self.backoff, str):
            return float(resolve(self.backoff)(attempt))
        ceiling = min(self.backoff_max, self.backoff * 2 ** max(attempt - 1, 0))
        return random.uniform(ceiling / 2, ceiling)

    def for_job(self, job: Any) -> JobType:
        """This job type with ``job``'s own options applied (itself if it has none)."""
        if not self.job_options:
            return self
        overrides = resolve(self.job_options)(job)
        return replace(self, **{k: v for k, v in overrides.items() if k in PER_JOB_OPTION_KEYS})


# The job types django_dbq defines itself. Their tasks are imported only when a job of
# the type runs, so the modules named here may depend on things (Django 6's
# django.tasks) that a project without such jobs does not have.
TASKS_JOB_NAME = "django_dbq.tasks"
BUILTIN_JOB_TYPES: dict[str, JobType] = {
    TASKS_JOB_NAME: JobType(
        name=TASKS_JOB_NAME,
        tasks=("django_dbq.integrations.tasks_backend.run_task",),
        job_options="django_dbq.integrations.tasks_backend.job_options",
    ),
}


def _entry_problems(name: Any, entry: Any) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Normalise one entry to dict form and list what is wrong with it."""
    problems: list[Problem] = []
    if not isinstance(name, str) or not name or len(name) > NAME_MAX_LENGTH:
        problems.append(
            Problem(
                "django_dbq.E003",
                f"JOBS key {name!r} is not a valid job name.",
                f"Use a non-empty string of at most {NAME_MAX_LENGTH} characters.",
            )
        )
        return None, problems
    if name in BUILTIN_JOB_TYPES:
        problems.append(
            Problem(
                "django_dbq.E003",
                f"JOBS key {name!r} is reserved for a job type django_dbq defines itself.",
                "Rename the entry.",
            )
        )
        return None, problems
    if isinstance(entry, (list, tuple)):
        entry = {"tasks": list(entry)}
    if not isinstance(entry, Mapping):
        problems.append(
            Problem(
                "django_dbq.E003",
                f"JOBS[{name!r}] is a {type(entry).__name__}, not a list of task paths or a dict.",
                'Write ["path.to.task", ...] or {"tasks": ["path.to.task", ...], ...}.',
            )
        )
        return None, problems
    entry = dict(entry)
    tasks = entry.get("tasks")
    if (
        not isinstance(tasks, (list, tuple))
        or not tasks
        or not all(isinstance(t, str) and t for t in tasks)
    ):
        problems.append(
            Problem(
                "django_dbq.E004",
                f"JOBS[{name!r}] has no tasks.",
                'Give a non-empty list of dotted paths: "tasks": ["app.tasks.step_one"].',
            )
        )
    for key in entry:
        if key not in KNOWN_KEYS:
            problems.append(
                Problem(
                    "django_dbq.E012",
                    f"JOBS[{name!r}] has an unknown key {key!r}.",
                    did_you_mean(key, KNOWN_KEYS)
                    + "Known keys: "
                    + ", ".join(KNOWN_KEYS)
                    + ".",
                )
            )
    for key in HOOK_KEYS:
        if entry.get(key) is not None and not (isinstance(entry[key], str) and entry[key]):
            problems.append(
                Problem(
                    "django_dbq.E007",
                    f"JOBS[{name!r}][{key!r}] is not a dotted path string.",
                    "Give the dotted path of a callable, or leave the key out.",
                )
            )
    problems.extend(_option_problems(name, entry))
    return entry, problems


def _option_problems(name: str, entry: dict[str, Any]) -> list[Problem]:
    rules = {
        "max_attempts": options.MAX_ATTEMPTS,
        "backoff": options.dotted_path_or(options.BACKOFF),
        "backoff_max": options.BACKOFF_MAX,
        "lease_seconds": options.LEASE_SECONDS,
        "max_running": options.MAX_RUNNING,
        "rate": options.RATE,
        "timeout": options.TIMEOUT,
    }
    problems = []
    for key, rule in rules.items():
        hint = rule.problem(entry[key]) if key in entry else None
        if hint is not None:
            problems.append(
                Problem(
                    "django_dbq.E009",
                    f"JOBS[{name!r}][{key!r}] = {entry[key]!r} is invalid.",
                    hint[0].upper() + hint[1:] + ".",
                )
            )
    problems.extend(_batch_problems(name, entry))
    problems.extend(_unique_problems(name, entry))
    return problems


def _unique_problems(name: str, entry: dict[str, Any]) -> list[Problem]:
    spec = entry.get("unique")
    if spec is None:
        return []
    hint = (
        'Use "unique": "<key template>" or {"key": "<key template>", "for": <seconds>}, '
        'the template formatted with the workspace, e.g. "invoice:{invoice_id}".'
    )
    if isinstance(spec, str):
        spec = {"key": spec}
    if not isinstance(spec, Mapping) or set(spec) - {"key", "for"}:
        return [
            Problem("django_dbq.E017", f"JOBS[{name!r}]['unique'] = {spec!r} is invalid.", hint)
        ]
    key = spec.get("key")
    problems = []
    if not isinstance(key, str) or not key:
        problems.append(
            Problem("django_dbq.E017", f"JOBS[{name!r}]['unique'] has no key template.", hint)
        )
    else:
        try:
            list(string.Formatter().parse(key))
        except ValueError as exc:
            problems.append(
                Problem(
                    "django_dbq.E017",
                    f"JOBS[{name!r}]['unique'] key template {key!r} is malformed: {exc}.",
                    hint,
                )
            )
    if "for" in spec and not options.seconds(0).valid(spec["for"]):
        problems.append(
            Problem(
                "django_dbq.E017",
                f"JOBS[{name!r}]['unique']['for'] = {spec['for']!r} is invalid.",
                f"Use {options.seconds(0).expected}: how long after a job finished another "
                "with its key is still refused.",
            )
        )
    return problems


def _batch_problems(name: str, entry: dict[str, Any]) -> list[Problem]:
    if entry.get("batch") is None:
        return []
    spec = entry["batch"]
    hint = (
        'Write "batch": {"size": 100, "wait": 10}: size a whole number from 1 to '
        f"{BATCH_SIZE_MAX}, wait seconds from 0 to a year (default 0)."
    )
    if not isinstance(spec, Mapping) or set(spec) - {"size", "wait"}:
        return [Problem("django_dbq.E011", f"JOBS[{name!r}]['batch'] = {spec!r} is invalid.", hint)]
    size, wait = spec.get("size"), spec.get("wait", 0)
    problems = []
    if not (isinstance(size, int) and not isinstance(size, bool) and 1 <= size <= BATCH_SIZE_MAX):
        message = f"JOBS[{name!r}]['batch']['size'] = {size!r} is invalid."
        problems.append(Problem("django_dbq.E011", message, hint))
    if not options.BACKOFF.valid(wait):
        message = f"JOBS[{name!r}]['batch']['wait'] = {wait!r} is invalid."
        problems.append(Problem("django_dbq.E011", message, hint))
    tasks = entry.get("tasks")
    if isinstance(tasks, (list, tuple)) and len(tasks) > 1:
        problems.append(
            Problem(
                "django_dbq.E011",
                f"JOBS[{name!r}] is a batch job type with {len(tasks)} tasks.",
                "A batch job type has exactly one task, called with the list of jobs.",
            )
        )
    for key in ("pre_task_hook", "post_task_hook"):
        if entry.get(key):
            problems.append(
                Problem(
                    "django_dbq.E011",
                    f"JOBS[{name!r}] is a batch job type with a {key}.",
                    "Batch tasks get the whole list of jobs; do per-batch set-up in the task.",
                )
            )
    for key in ("max_running", "rate"):
        if entry.get(key) is not None:
            problems.append(
                Problem(
                    "django_dbq.E011",
                    f"JOBS[{name!r}] is a batch job type with {key!r}.",
                    "Batches are not limited: size the batch instead, or put the job type "
                    "in a queue of its own served by fewer workers.",
                )
            )
    return problems


def _import_problems(name: str, entry: dict[str, Any]) -> list[Problem]:
    problems = []
    paths = [("task", "django_dbq.E005", "django_dbq.E006", p) for p in entry.get("tasks") or []]
    paths += [
        (key, "django_dbq.E007", "django_dbq.E008", entry[key])
        for key in HOOK_KEYS
        if isinstance(entry.get(key), str) and entry[key]
    ]
    if isinstance(entry.get("backoff"), str) and entry["backoff"]:
        paths.append(("backoff", "django_dbq.E007", "django_dbq.E008", entry["backoff"]))
    for kind, import_id, callable_id, path in paths:
        if not isinstance(path, str) or not path:
            continue
        try:
            target = import_string(path)
        except Exception as exc:  # ImportError, but also errors raised by the module itself
            problems.append(
                Problem(
                    import_id,
                    f"JOBS[{name!r}] {kind} {path!r} cannot be imported: "
                    f"{type(exc).__name__}: {exc}",
                    "Check the dotted path and that its module imports cleanly.",
                )
            )
            continue
        if not callable(target):
            problems.append(
                Problem(
                    callable_id,
                    f"JOBS[{name!r}] {kind} {path!r} is not callable.",
                    "Point it at a function.",
                )
            )
    return problems


def validate(raw: Any, *, imports: bool = True) -> tuple[dict[str, JobType], list[Problem]]:
    """Parse a raw ``JOBS`` value; return the valid job types and every problem found."""
    if raw is None and _uses_tasks_backend():
        return {}, []  # a project that only runs django.tasks tasks needs no JOBS
    if raw is None:
        return {}, [
            Problem(
                "django_dbq.E001",
                "The JOBS setting is missing.",
                'Add JOBS = {"job_name": ["path.to.task"]} to your settings.',
            )
        ]
    if not isinstance(raw, Mapping):
        return {}, [
            Problem(
                "django_dbq.E002",
                f"The JOBS setting is a {type(raw).__name__}, not a dict.",
                'Write JOBS = {"job_name": ["path.to.task"]}.',
            )
        ]
    job_types: dict[str, JobType] = {}
    problems: list[Problem] = []
    for name, raw_entry in raw.items():
        entry, entry_problems = _entry_problems(name, raw_entry)
        if entry is not None and imports:
            entry_problems += _import_problems(name, entry)
        problems += entry_problems
        if entry is None or any(not p.warning for p in entry_problems):
            continue
        options = {k: entry[k] for k in (*HOOK_KEYS, *OPTION_KEYS) if k in entry}
        if options.get("batch") is not None:
            options["batch"] = Batch(
                size=entry["batch"]["size"], wait=float(entry["batch"].get("wait", 0))
            )
        if options.get("unique") is not None:
            spec = options["unique"]
            spec = {"key": spec} if isinstance(spec, str) else spec
            options["unique"] = Unique(key=spec["key"], period=float(spec.get("for", 0)))
        job_types[name] = JobType(name=name, tasks=tuple(entry["tasks"]), **options)
    return job_types, problems


def _uses_tasks_backend() -> bool:
    """Whether a TASKS backend is django_dbq's (then JOBS may be left out)."""
    from django.conf import settings

    backends = getattr(settings, "TASKS", None)
    if not isinstance(backends, Mapping):
        return False
    return any(
        isinstance(b, Mapping) and str(b.get("BACKEND", "")).startswith("django_dbq.")
        for b in backends.values()
    )


_parsed: tuple[int, Any, dict[str, JobType]] | None = None


def job_types() -> dict[str, JobType]:
    """All job types of the current ``JOBS`` setting (parsed once per setting value).

    Raises :class:`JobConfigurationError` if the setting is malformed; run
    ``manage.py check`` for the full list of problems.
    """
    global _parsed
    raw = conf.raw_jobs()
    cached = _parsed
    if cached is not None and cached[0] == id(raw) and cached[1] is raw:
        return cached[2]
    parsed, problems = validate(raw, imports=False)
    errors = [p for p in problems if not p.warning]
    if errors:
        raise JobConfigurationError(f"{errors[0].msg} {errors[0].hint} ({errors[0].id})")
    _parsed = (id(raw), raw, parsed)
    return parsed


def batch_types() -> dict[str, Batch]:
    """The batching of every batch job type in ``JOBS``, by job type name."""
    return {name: t.batch for name, t in job_types().items() if t.batch is not None}


def get_job_type(name: str) -> JobType:
    """The :class:`JobType` called ``name`` (from JOBS or built in); else :class:`UnknownJobError`.

    A built-in type is found even when JOBS is missing or malformed; the error lists
    the names in JOBS only.
    """
    try:
        builtin = BUILTIN_JOB_TYPES.get(name)
    except TypeError:  # an unhashable name
        builtin = None
    if builtin is not None:
        return builtin
    types = job_types()
    try:
        return types[name]
    except (KeyError, TypeError):
        raise UnknownJobError(name, list(types)) from None


def job_type_for(job: Any) -> JobType | None:
    """The job type that runs ``job``, with the job's own options applied.

    ``None`` if its name is unknown. Use it wherever a job's ``max_attempts``,
    backoff or lease matter (running, retrying, rescuing, renewing it). A failing
    ``job_options`` function is logged and the type's own options are used.
    """
    try:
        job_type = get_job_type(job.name)
    except UnknownJobError:
        return None
    try:
        return job_type.for_job(job)
    except Exception:
        logger.exception("Could not read the options of job %s; using its type's", job.pk)
        return job_type


@cache
def resolve(path: str) -> Callable[..., Any]:
    """Import a dotted path named by the JOBS setting (cached)."""
    return import_string(path)
