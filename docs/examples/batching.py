"""The examples of docs/batching.rst.

They use the models of the test project (tests/models.py): a Game has Players.
In your project, put tasks like these in your app's jobs module and name them in
JOBS, for example::

    JOBS = {
        "count_clicks": {
            "tasks": ["analytics.jobs.count_clicks"],
            "batch": {"size": 100, "wait": 10},
        },
        "add_players": {
            "tasks": ["games.jobs.add_players"],
            "batch": {"size": 500, "wait": 5},
            "max_attempts": 3,
        },
    }
"""

import logging
from collections import Counter

from django_dbq.models import Job
from tests.models import Game, Player

logger = logging.getLogger(__name__)


# --- The click counter ------------------------------------------------------------------


def count_clicks(jobs):
    """Count a batch of clicks per URL; each job is one click."""
    counts = Counter(job.workspace["url"] for job in jobs)
    for url, count in counts.items():
        logger.info("Clicks: %s -> %d", url, count)
    for job in jobs:
        # The job's result: saved with it when the batch completes.
        job.workspace["clicks_in_batch"] = counts[job.workspace["url"]]


def count_click(url):
    """What a view calls for each click (celery-batches: count_click.delay(url))."""
    return Job.objects.create(name="count_clicks", workspace={"url": url})


# --- Bulk insert ------------------------------------------------------------------------

NAME_MAX_LENGTH = Player._meta.get_field("name").max_length


def add_player(game, name):
    """Ask for a player to be added to a game. The batch key is the game's id, so
    that every batch belongs to one game."""
    return Job.objects.create(name="add_players", batch_key=str(game.pk), workspace={"name": name})


def add_players(jobs):
    """Create one Player per job, with one INSERT for the whole batch."""
    game = Game.objects.get(pk=jobs[0].batch_key)  # one game per batch: the batch key
    # A batch can run twice (its worker died after the INSERT): skip the jobs whose
    # player exists already. Each player is tagged with the job that created it.
    done = set(Player.objects.filter(operation__in=jobs).values_list("operation", flat=True))
    new = []
    for job in jobs:
        name = job.workspace.get("name", "").strip()
        if not name or len(name) > NAME_MAX_LENGTH:
            job.fail(f"invalid player name {name!r}")  # this job only
        elif job.pk not in done:
            new.append(Player(game=game, name=name, operation=job))
    Player.objects.bulk_create(new)
