"""The metrics view: the dashboard's figures in Prometheus' text format.

Added to a project with one line in its URLconf::

    path("dbq/", include("django_dbq.urls")),   # serves dbq/metrics

A request is let in with the bearer token of the ``DBQ_METRICS_TOKEN`` setting
(``Authorization: Bearer <token>``, for a scraper), or from a logged-in staff user
with the view permission on jobs; anyone else gets 401 (no credentials) or 403.
It needs ``prometheus-client`` (``pip install "django-dbq[prometheus]"``); without
it the view answers 501 with that hint.
"""

from __future__ import annotations

import hmac
from typing import Any

from django.http import HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import conf
from .operations import exposition, stats


def _token_matches(request: Any) -> bool | None:
    """True or False if the request carries a bearer token, None if it carries none."""
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return None
    expected = conf.metrics_token()
    # Bytes: compare_digest refuses str with characters outside ASCII, and a client
    # can send any (a WSGI server decodes headers as Latin-1).
    return expected is not None and hmac.compare_digest(
        given.strip().encode("utf-8", "surrogateescape"), expected.encode("utf-8")
    )


@never_cache
@require_GET
def metrics(request: Any) -> HttpResponse:
    """Serve :func:`django_dbq.operations.stats.snapshot` to Prometheus."""
    token = _token_matches(request)
    user = getattr(request, "user", None)
    staff = bool(
        user is not None
        and user.is_active
        and user.is_staff
        and user.has_perm("django_dbq.view_job")
    )
    if token is False or (token is None and not staff):
        logged_in = user is not None and user.is_authenticated
        if token is None and not logged_in:
            response = HttpResponse(
                "Authentication required: a bearer token (DBQ_METRICS_TOKEN) or a staff login.\n",
                status=401,
                content_type="text/plain",
            )
            response["WWW-Authenticate"] = 'Bearer realm="django_dbq metrics"'
            return response
        return HttpResponse("Forbidden.\n", status=403, content_type="text/plain")
    try:
        content_type = exposition.content_type()
    except exposition.MetricsUnavailable as exc:
        return HttpResponse(f"{exc}\n", status=501, content_type="text/plain")
    return HttpResponse(exposition.render(stats.snapshot()), content_type=content_type)
