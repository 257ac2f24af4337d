import logging
import sys

from django.core.management.base import BaseCommand, CommandError

from django_dbq.cli import parse_queue_names
from django_dbq.exceptions import DbqError


def _positive_float(option, value, minimum=0.0):
    try:
        number = float(value)
    except ValueError:
        raise CommandError(f"{option} must be a number of seconds, not {value!r}.") from None
    if not number >= minimum:
        raise CommandError(f"{option} must be at least {minimum:g}, not {value!r}.")
    return number


def _positive_int(option, value):
    try:
        number = int(value)
    except ValueError:
        raise CommandError(f"{option} must be a whole number, not {value!r}.") from None
    if number < 1:
        raise CommandError(f"{option} must be at least 1, not {value!r}.")
    return number


class Command(BaseCommand):
    help = "Run jobs from one or more queues until stopped (SIGTERM/SIGINT)."

    def add_arguments(self, parser):
        parser.add_argument("queue_names", nargs="*", help="Queues to serve (default: default).")
        parser.add_argument(
            "--concurrency", "-c", default="1", help="Jobs run at once, on threads."
        )
        parser.add_argument(
            "--processes",
            "-p",
            default="1",
            help="Worker processes to run and supervise (restarted if they die).",
        )
        parser.add_argument(
            "--rate_limit",
            "--rate-limit",
            default="0",
            dest="rate_limit",
            help="Minimum seconds between jobs (default 0: no gap).",
        )
        parser.add_argument(
            "--poll-interval",
            "--poll_interval",
            default="1",
            dest="poll_interval",
            help="Seconds between polls when idle (default 1).",
        )
        parser.add_argument(
            "--grace",
            default="25",
            help="Seconds running jobs get to finish after SIGTERM (default 25).",
        )
        parser.add_argument(
            "--burst", action="store_true", help="Exit once no runnable jobs are left."
        )
        parser.add_argument(
            "--dry-run",
            "--dry_run",
            action="store_true",
            dest="dry_run",
            help="Check the options and settings, print what would run, and exit.",
        )

    def handle(self, *args, **options):
        self._configure_logging(options["verbosity"])
        try:
            queues = parse_queue_names(options["queue_names"]) or ["default"]
        except DbqError as exc:
            raise CommandError(str(exc)) from None
        settings = {
            "concurrency": _positive_int("--concurrency", options["concurrency"]),
            "rate_limit": _positive_float("--rate_limit", options["rate_limit"]),
            "poll_interval": _positive_float("--poll-interval", options["poll_interval"], 0.01),
            "grace": _positive_float("--grace", options["grace"]),
            "burst": options["burst"],
        }
        processes = _positive_int("--processes", options["processes"])
        if options["dry_run"]:
            from django_dbq import jobs

            try:
                jobs.job_types()
            except DbqError as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(
                f"Starting job worker for queue(s) {', '.join(queues)} "
                f"(dry run: concurrency={settings['concurrency']}, processes={processes})"
            )
            return
        if processes > 1:
            from django_dbq.supervisor import Supervisor

            sys.exit(Supervisor(processes, sys.argv, burst=options["burst"]).run())
        from django_dbq.worker import Worker

        try:
            Worker(queues, **settings).run()
        except DbqError as exc:
            raise CommandError(str(exc)) from None

    def _configure_logging(self, verbosity):
        logger = logging.getLogger("django_dbq")
        if not logger.handlers and not logging.getLogger().handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            logger.addHandler(handler)
            logger.propagate = False
        if verbosity == 0:
            logger.setLevel(logging.WARNING)
        elif verbosity >= 2:
            logger.setLevel(logging.DEBUG)
        elif logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)
