"""django_dbq.runtime, property-based: whatever the tasks do, every job ends with its
real outcome.

Hypothesis generates batches of jobs of three job types (one attempt; three
attempts; a chain of three steps with two attempts each) and, for each step and
attempt, what the task does: return (leaving a JSON value or not), raise an
exception of an assorted type with a hostile message (NUL, a lone surrogate, a
``str()`` that raises), ``sys.exit()``, ``KeyboardInterrupt``, leave a
workspace the database cannot store (a datetime, 40 levels deep, too many
bytes), sleep a little (well within the lease). A real ``manage.py worker
--burst`` process runs each batch; then the invariants are checked:

- the worker exits 0 and no job is left PROCESSING (or waiting);
- every job ends as a model of the rules says: COMPLETED with exactly the
  workspace its tasks left, or FAILED with the error type of its last attempt
  and its last saved workspace; innocent jobs are never failed;
- no job ran twice at once, and none ran more often than its plan allows.

The default profile runs 40 batches of up to 8 jobs (about 160 jobs, CI); set
``DBQ_PROPERTY_PROFILE=long`` for 300 batches.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_dbq.models import Job
from tests.conftest import WorkerProcess, worker_env
from tests.models import Execution

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "long",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PROFILE = os.environ.get("DBQ_PROPERTY_PROFILE", "ci")

# name: (steps, max_attempts)
JOB_TYPES = {"prop_once": (1, 1), "prop_retry": (1, 3), "prop_chain": (3, 2)}
MAX_WORKSPACE_BYTES = 100_000
INVALID = "django_dbq.exceptions.InvalidWorkspaceError"
ERROR_TYPES = {
    "ValueError": "builtins.ValueError",
    "KeyError": "builtins.KeyError",
    "RuntimeError": "builtins.RuntimeError",
    "HostileError": "tests.property_tasks.HostileError",
}

# Text every database stores: no NUL (PostgreSQL's jsonb) and no lone surrogates.
text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    # PostgreSQL's jsonb gives back a float of 1e16 or more as an integer: stay below.
    st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, width=32),
    text,
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)
    ),
    max_leaves=8,
)
sleep = st.sampled_from([0, 0, 0, 5, 20])
action = st.one_of(
    st.fixed_dictionaries({"do": st.just("return"), "sleep_ms": sleep}),
    st.fixed_dictionaries({"do": st.just("return"), "value": json_value, "sleep_ms": sleep}),
    st.fixed_dictionaries(
        {
            "do": st.just("raise"),
            "exc": st.sampled_from(sorted(ERROR_TYPES)),
            "message": st.sampled_from(["plain", "nul", "surrogate", "long", "lines"]),
        }
    ),
    st.fixed_dictionaries({"do": st.sampled_from(["exit", "interrupt"])}),
    st.fixed_dictionaries({"do": st.sampled_from(["nonjson", "deep", "oversize"])}),
)


@st.composite
def job_spec(draw: Any) -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(JOB_TYPES)))
    steps, attempts = JOB_TYPES[name]
    plan = [draw(st.lists(action, min_size=attempts, max_size=attempts)) for _ in range(steps)]
    return {"name": name, "plan": plan}


def expected_end(spec: dict[str, Any]) -> tuple[str, str | None, dict[str, Any], int]:
    """The state, error type and workspace a job must end with, and how many times
    its task may run, by the rules of docs/worker.rst."""
    _, attempts = JOB_TYPES[spec["name"]]
    workspace: dict[str, Any] = {"plan": spec["plan"]}
    runs = 0
    for step, actions in enumerate(spec["plan"]):
        error = None
        for attempt in range(attempts):
            action = actions[attempt]
            runs += 1
            kind = action["do"]
            if kind == "return":
                if "value" in action:
                    workspace[f"out{step}"] = action["value"]
                break
            error = {
                "raise": ERROR_TYPES.get(action.get("exc", "")),
                "exit": "builtins.SystemExit",
                "interrupt": "builtins.KeyboardInterrupt",
            }.get(kind, INVALID)
        else:
            return "FAILED", error, workspace, runs
    return "COMPLETED", None, workspace, runs


def run_burst_worker(tmp_path: Any, number: int) -> WorkerProcess:
    worker = WorkerProcess(
        ["--burst", "--concurrency", "2"],
        tmp_path / f"worker-{number}.log",
        worker_env(DBQ_MAX_WORKSPACE_BYTES=str(MAX_WORKSPACE_BYTES), DBQ_LOG_LEVEL="WARNING"),
    )
    return worker


@settings(settings.get_profile(PROFILE))
@given(specs=st.lists(job_spec(), min_size=1, max_size=8))
def test_every_job_ends_with_its_real_outcome_whatever_its_tasks_do(tmp_path, specs):
    Execution.objects.all().delete()
    Job.objects.all().delete()
    jobs = [Job.objects.create(name=s["name"], workspace={"plan": s["plan"]}) for s in specs]

    worker = run_burst_worker(tmp_path, len(os.listdir(tmp_path)))
    try:
        code = worker.wait(timeout=120)
    finally:
        worker.stop()
    assert code == 0, worker.output()[-3000:]

    for job, spec in zip(jobs, specs, strict=True):
        job.refresh_from_db()
        state, error, workspace, runs = expected_end(spec)
        where = f"job {spec} ended {job.state} errors={[e.get('type') for e in job.errors]}"
        assert job.state == state, where
        assert job.workspace == workspace, where
        if error is not None:
            assert job.errors[-1]["type"] == error, where
            assert "\x00" not in job.errors[-1]["message"], where
        executions = sorted(
            Execution.objects.filter(job_id=job.pk).values_list("started", "finished")
        )
        assert len(executions) == runs, where
        for (_, end), (start, _) in itertools.pairwise(executions):
            assert end <= start, f"two executions of one job overlapped: {where}"


def test_the_model_of_the_rules_fails_a_job_whose_last_attempt_raised():
    """A positive control of expected_end: it is not a model that always says COMPLETED."""
    spec = {
        "name": "prop_retry",
        "plan": [[{"do": "exit"}, {"do": "deep"}, {"do": "raise", "exc": "KeyError"}]],
    }
    assert expected_end(spec)[:2] == ("FAILED", "builtins.KeyError")
    spec["plan"][0][1] = {"do": "return", "value": 1}
    assert expected_end(spec) == (
        "COMPLETED",
        None,
        {"plan": spec["plan"], "out0": 1},
        2,
    )



