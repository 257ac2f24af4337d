"""The upgrade from django-db-queue 3.x: a project of the old package (``old_project``)."""
