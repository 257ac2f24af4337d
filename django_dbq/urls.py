"""django_dbq's URLs: ``path("dbq/", include("django_dbq.urls"))`` serves the
Prometheus metrics at ``dbq/metrics`` (see :mod:`django_dbq.views`)."""

from django.urls import path

from . import views

app_name = "django_dbq"
urlpatterns = [path("metrics", views.metrics, name="metrics")]
