import logging
import sys

from django.core.management.base import BaseCommand, CommandError

from django_dbq.exceptions import DbqError
from django_dbq.management.options import (
    parse_count,
    parse_queue_names,
    parse_seconds,
    require_migrated,
)


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
            "--no-schedules",
            "--no_schedules",
            action="store_false",
            dest="schedules",
            help="Fire no periodic jobs (DBQ_SCHEDULES and the admin's schedules) from "
            "this worker; by default every worker may fire them, each tick exactly once.",
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
            settings = {
                "concurrency": parse_count("--concurrency", options["concurrency"]),
                "rate_limit": parse_seconds("--rate_limit", options["rate_limit"]),
                "poll_interval": parse_seconds("--poll-interval", options["poll_interval"], 0.01),
                "grace": parse_seconds("--grace", options["grace"]),
                "burst": options["burst"],
                "schedules": options["schedules"],
            }
            processes = parse_count("--processes", options["processes"])
            require_migrated()
        except DbqError as exc:
            raise CommandError(str(exc)) from None
        if options["dry_run"]:
            from django_dbq import job_types

            try:
                job_types.job_types()
            except DbqError as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(
                f"Starting job worker for queue(s) {', '.join(queues)} "
                f"(dry run: concurrency={settings['concurrency']}, processes={processes})"
            )
            return
        if processes > 1:
            from django.db import connections

            from django_dbq.runtime.supervisor import Supervisor

            connections.close_all()  # the supervisor itself needs none

            sys.exit(Supervisor(processes, sys.argv, burst=options["burst"]).run())
        from django_dbq.runtime.worker import Worker

        try:
            worker = Worker(queues, **settings)
            worker.run()
        except DbqError as exc:
            raise CommandError(str(exc)) from None
        if worker.crashed:
            sys.exit(1)
        if worker.restart:
            from django_dbq.runtime.worker import EXIT_RESTART

            sys.exit(EXIT_RESTART)

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
