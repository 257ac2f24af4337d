"""django_dbq: a job queue for Django that needs nothing but the database."""

__version__ = "0.1.0"
