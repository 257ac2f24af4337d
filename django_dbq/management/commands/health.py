from django.core.management.base import BaseCommand, CommandError

from django_dbq.exceptions import DbqError
from django_dbq.management.options import parse_queue_names, parse_seconds, require_migrated
from django_dbq.operations import health


class Command(BaseCommand):
    help = (
        "Check the queue's health, for liveness and readiness probes and cron alerts: "
        "exits 1 with a one-line reason when no worker has heartbeated within "
        "--max-heartbeat-age seconds, or the oldest ready job of a queue has waited longer "
        "than --max-lag seconds; prints 'ok: ...' and exits 0 otherwise."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--max-heartbeat-age",
            "--max_heartbeat_age",
            dest="max_heartbeat_age",
            default="60",
            help="Seconds within which some worker must have heartbeated (default 60; "
            "workers heartbeat every third of DBQ_LEASE_SECONDS). 0 turns the check off.",
        )
        parser.add_argument(
            "--max-lag",
            "--max_lag",
            dest="max_lag",
            default=None,
            help="Seconds the oldest ready job of a queue may wait (default: not checked).",
        )
        parser.add_argument(
            "--queue",
            action="append",
            default=[],
            dest="queues",
            help="A queue to lag-check (repeat for more; default: every queue that has "
            "jobs). Paused queues are not lag-checked.",
        )

    def handle(self, *args, **options):
        try:
            age = parse_seconds("--max-heartbeat-age", options["max_heartbeat_age"])
            lag = options["max_lag"]
            lag = parse_seconds("--max-lag", lag) if lag is not None else None
            queues = parse_queue_names(options["queues"])
            require_migrated()
        except DbqError as exc:
            raise CommandError(str(exc)) from None
        result = health.check(max_heartbeat_age=age or None, max_lag=lag, queues=queues)
        if not result.ok:
            raise CommandError(result.line())
        self.stdout.write(result.line())
