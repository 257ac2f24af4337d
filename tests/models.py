"""Models used only by the test suite."""

import uuid

from django.db import models


class Execution(models.Model):
    """One run of a test task, written by the task itself (see tests/tasks.py)."""

    job_id = models.UUIDField(db_index=True)
    pid = models.IntegerField()
    thread = models.CharField(max_length=64, default="")
    started = models.FloatField()
    finished = models.FloatField()


class Game(models.Model):
    """ievv_batchframework's example: a game whose players are imported in bulk."""

    name = models.CharField(max_length=50)


class Player(models.Model):
    game = models.ForeignKey(Game, on_delete=models.CASCADE)
    name = models.CharField(max_length=50)
    # The tracked operation that created this player (tags bulk-created rows).
    operation = models.ForeignKey("django_dbq.Job", null=True, on_delete=models.SET_NULL)


class Card(models.Model):
    player = models.ForeignKey(Player, on_delete=models.CASCADE)


class Document(models.Model):
    """A model with a UUID primary key, to use as a job's context object."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)


class Tag(models.Model):
    """A model with a string primary key, to use as a job's context object."""

    code = models.CharField(primary_key=True, max_length=20)
