"""What plugs django_dbq into the rest of a project: Django's tasks framework
(``tasks_backend``), tracking in-process operations (``tracking``) and the
synchronous mode and test helpers (``synchronous``). Each depends only on the
layers below it; none is imported by them."""
