"""The Prometheus metrics view (``dbq/metrics``): who is let in (a staff user with the
view permission on jobs, or the bearer token of DBQ_METRICS_TOKEN), what it serves,
and that no cache keeps it."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client, override_settings
from django.urls import reverse

from django_dbq.models import Job
from django_dbq.operations import pauses

pytestmark = pytest.mark.django_db

TOKEN = "s3cret-scraper-token-0123456789"


def metrics_url() -> str:
    return reverse("django_dbq:metrics")


def logged_in(username: str, *codenames: str, is_staff: bool = True) -> Client:
    user = User.objects.create_user(username, password="pw", is_staff=is_staff)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def some_jobs() -> None:
    for _ in range(3):
        Job.objects.create(name="noop", queue_name="mail")
    Job.objects.create(name="noop")
    pauses.pause("mail", by="test")


def sample(text: str, name: str, queue: str) -> float:
    """The value of the sample ``name{queue="..."}`` in a Prometheus exposition."""
    found = re.search(rf'^{name}\{{queue="{re.escape(queue)}"\}} (\S+)$', text, re.MULTILINE)
    assert found, f"no {name} for queue {queue!r} in:\n{text}"
    return float(found[1])


def assert_never_cached(response) -> None:
    cache_control = {part.strip() for part in response["Cache-Control"].split(",")}
    assert {"no-cache", "no-store", "must-revalidate", "private", "max-age=0"} <= cache_control


def test_an_anonymous_request_is_asked_to_authenticate(client):
    response = client.get(metrics_url())
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="django_dbq metrics"'
    assert b"dbq_jobs_ready" not in response.content
    assert_never_cached(response)


def test_a_logged_in_user_who_is_not_staff_is_refused():
    # Even with the permission: the metrics are for staff.
    client = logged_in("visitor", "view_job", is_staff=False)
    response = client.get(metrics_url())
    assert response.status_code == 403
    assert b"dbq_jobs_ready" not in response.content
    assert "WWW-Authenticate" not in response


def test_a_staff_user_without_the_view_permission_is_refused():
    response = logged_in("clerk").get(metrics_url())
    assert response.status_code == 403
    assert b"dbq_jobs_ready" not in response.content


def test_a_staff_user_with_the_view_permission_reads_the_metrics():
    some_jobs()

    response = logged_in("viewer", "view_job").get(metrics_url())

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert "version=" in response["Content-Type"]  # Prometheus' text format, versioned
    text = response.content.decode()
    assert re.search(r'^dbq_jobs_ready\{queue="mail"\} 3(\.0)?$', text, re.MULTILINE)
    assert sample(text, "dbq_jobs_ready", "default") == 1
    assert sample(text, "dbq_queue_paused", "mail") == 1
    assert sample(text, "dbq_queue_paused", "default") == 0
    assert "# TYPE dbq_jobs_ready gauge" in text
    assert_never_cached(response)


@override_settings(DBQ_METRICS_TOKEN=TOKEN)
def test_the_right_bearer_token_reads_the_metrics(client):
    some_jobs()

    response = client.get(metrics_url(), headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    assert sample(response.content.decode(), "dbq_jobs_ready", "mail") == 3
    assert_never_cached(response)


@override_settings(DBQ_METRICS_TOKEN=TOKEN)
def test_a_wrong_bearer_token_is_refused(client):
    some_jobs()
    for header in (f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", "Bearer nope"):
        response = client.get(metrics_url(), headers={"Authorization": header})
        assert response.status_code == 403, header
        assert b"dbq_jobs_ready" not in response.content


@override_settings(DBQ_METRICS_TOKEN=TOKEN)
def test_a_wrong_token_is_refused_even_from_a_staff_user():
    client = logged_in("viewer", "view_job")
    response = client.get(metrics_url(), headers={"Authorization": "Bearer wrong-token-1234567"})
    assert response.status_code == 403


def test_a_bearer_token_is_refused_when_no_token_is_configured(client):
    response = client.get(metrics_url(), headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 403


def test_post_is_not_allowed():
    client = logged_in("viewer", "view_job")
    response = client.post(metrics_url())
    assert response.status_code == 405
    assert response["Allow"] == "GET"


@override_settings(DBQ_METRICS_TOKEN=TOKEN)
def test_a_token_with_characters_outside_ascii_is_refused_not_an_error():
    # A WSGI server decodes header bytes as Latin-1: any client can send these.
    client = Client(raise_request_exception=False)
    response = client.get(metrics_url(), headers={"Authorization": "Bearer " + "é" * 20})
    assert response.status_code == 403
