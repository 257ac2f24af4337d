"""The examples of docs/tracking.rst.

They use the models of the test project (tests/models.py): a Game has Players,
a Player has Cards, and ``Player.operation`` is a foreign key to the Job that
created the player. The blog-post functions take any model instance.
"""

from datetime import timedelta

from django.core.mail import send_mail
from django.utils import timezone

from django_dbq.models import Job
from tests.models import Card, Player

# --- Bulk creation tagged with the operation ----------------------------------------


def import_players(game, names):
    """Create a Player with one Card for each name: five queries, however many."""
    with Job.objects.track("import_players", context_object=game) as operation:
        Player.objects.bulk_create(
            [Player(game=game, name=name, operation=operation) for name in names]
        )
        players = Player.objects.filter(operation=operation)
        Card.objects.bulk_create([Card(player=player) for player in players])
        operation.workspace["players"] = len(names)  # the operation's output
    return operation


# --- An email that can be cancelled --------------------------------------------------

EMAIL_DELAY = timedelta(minutes=15)


def schedule_new_post_email(post):
    """When a post is published: email the subscribers in 15 minutes."""
    return Job.objects.create(
        name="new_post_email",
        context_object=post,
        run_after=timezone.now() + EMAIL_DELAY,
    )


def cancel_new_post_email(post):
    """The "cancel" view: delete the email job if it has not started."""
    return Job.objects.for_object(post).filter(name="new_post_email").cancel_pending()


def new_post_email_state(post):
    """What the post's page shows: the state of its latest email job, if any."""
    job = Job.objects.latest_for(post, "new_post_email")
    return job.state if job else None


def send_new_post_email(job):
    """The task of the "new_post_email" job type."""
    post = job.context_object
    if post is None:  # the post was deleted in the meantime
        return
    send_mail(f"New post: {post}", "Read it on the blog.", None, ["subscribers@example.com"])
    job.workspace["sent_at"] = timezone.now().isoformat()
