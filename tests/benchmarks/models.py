"""A plain model with the same fields as django_dbq's Job (figure 5's baseline).

No queue machinery: Django's ``create()`` of this model is what enqueueing one
job is compared with. Its fields are cloned from ``Job`` when this module is
imported, so it keeps the same shape as the Job model evolves; it gets the Job
model's declared indexes (renamed) but not the claim index or the NOTIFY
trigger, which are queue machinery. Its table is created by the suite with the
schema editor (the app has no migrations).
"""

from django.db import models

from django_dbq.models import Job


def _clone_fields() -> dict:
    attrs = {}
    for field in Job._meta.local_concrete_fields:
        if field.is_relation:  # deconstruct() of a relation needs the app registry ready
            attrs[field.name] = type(field)(
                field.remote_field.model, on_delete=field.remote_field.on_delete,
                null=field.null, blank=field.blank, db_index=field.db_index, related_name="+",
            )
            continue
        _name, _path, args, kwargs = field.deconstruct()
        attrs[field.name] = type(field)(*args, **kwargs)
    return attrs


def _clone_indexes() -> list:
    indexes = []
    for number, index in enumerate(Job._meta.indexes):
        clone = index.clone()
        clone.name = f"dbq_bench_{number}"
        indexes.append(clone)
    return indexes


BareJob = type("BareJob", (models.Model,), {
    "__module__": __name__,
    "__doc__": "A row of the same shape as a Job, created with plain Django.",
    "Meta": type("Meta", (), {"app_label": "dbq_bench", "indexes": _clone_indexes()}),
    **_clone_fields(),
})
