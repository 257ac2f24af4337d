"""The admin's forms for a job: add one (its name a choice of the JOBS names) and
edit one that no worker holds (queue, priority, run_after, workspace).

Every value is validated as ``Job.objects.create`` would validate it, so a bad
value is a form error, never an exception. The state is never a field: it changes
only through the actions (see :mod:`django_dbq.admin.actions`).
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from .. import job_types, store
from ..exceptions import InvalidJobError, InvalidWorkspaceError, JobConfigurationError
from ..models import Job, validate_fields, validate_workspace


def job_name_choices() -> list[tuple[str, str]]:
    """The JOBS names, sorted, after an empty choice (none if JOBS is broken)."""
    try:
        names = sorted(job_types.job_types())
    except JobConfigurationError:
        names = []
    return [("", "---------"), *((name, name) for name in names)]


class WorkspaceField(forms.JSONField):
    """A workspace as pretty-printed JSON, checked with
    :func:`django_dbq.models.validate_workspace` (an empty box is ``{}``)."""

    widget = forms.Textarea(attrs={"rows": 14, "class": "dbq-json", "spellcheck": "false"})

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", "A JSON object; the tasks of the job read and write it.")
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False, cls=self.encoder)

    def bound_data(self, data: Any, initial: Any) -> Any:
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return forms.fields.InvalidJSONInput(data)

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return {}
        try:
            value = super().to_python(value)
        except RecursionError:
            raise ValidationError(
                "The workspace is nested too deeply to be read.", code="invalid"
            ) from None
        return {} if value is None else value

    def validate(self, value: Any) -> None:
        super().validate(value)
        try:
            validate_workspace(value)
        except InvalidWorkspaceError as exc:
            raise ValidationError(str(exc), code="invalid_workspace") from None


def _check_fields(form: forms.ModelForm, name: str) -> None:
    """Run the model's checks of a new job's fields on the cleaned values."""
    data = form.cleaned_data
    probe = Job(
        name=name,
        queue_name=data.get("queue_name") or "",
        priority=data.get("priority") if data.get("priority") is not None else 0,
        run_after=data.get("run_after"),
    )
    try:
        validate_fields(probe)
    except InvalidJobError as exc:
        message = str(exc)
        field = next(
            (f for f in ("queue_name", "priority", "run_after") if message.startswith(f)), None
        )
        if field is not None and field in form.fields:
            form.add_error(field, message)
        else:
            raise ValidationError(message) from None


class JobAddForm(forms.ModelForm):
    """A new job: one of the JOBS names, its queue, priority, start time and workspace."""

    name = forms.ChoiceField(
        choices=job_name_choices,
        help_text="A job type of the JOBS setting.",
    )
    workspace = WorkspaceField(initial=dict)

    class Meta:
        model = Job
        fields = ("name", "queue_name", "priority", "run_after", "workspace")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("name"):
            _check_fields(self, data["name"])
        return data


class JobChangeForm(forms.ModelForm):
    """An edit of a job no worker holds; saved only if the job is unchanged since the
    page was opened (``seen_modified``, see :func:`django_dbq.store.edit`)."""

    workspace = WorkspaceField()
    seen_modified = forms.CharField(widget=forms.HiddenInput)

    class Meta:
        model = Job
        fields = ("queue_name", "priority", "run_after", "workspace")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None and self.instance.modified is not None:
            self.fields["seen_modified"].initial = self.instance.modified.isoformat()

    def clean_seen_modified(self) -> datetime.datetime:
        try:
            return datetime.datetime.fromisoformat(self.cleaned_data["seen_modified"])
        except (TypeError, ValueError):
            raise ValidationError("Reload the page: the form is incomplete.") from None

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        _check_fields(self, self.instance.name)
        seen = data.get("seen_modified")
        current = Job.objects.filter(pk=self.instance.pk).values_list("state", "modified").first()
        if current is None:
            raise ValidationError("This job no longer exists.")
        state, modified = current
        if state not in store.EDITABLE_STATES:
            raise ValidationError(
                f"This job is now {state}: only a job no worker holds (NEW, READY or "
                "FAILED) can be edited. Nothing was saved."
            )
        if seen is not None and modified != seen:
            raise ValidationError(
                "This job changed since you opened this page (a worker or another "
                "operator wrote it). Nothing was saved: open the job again to see it "
                "as it is now."
            )
        return data

    def edited_values(self) -> dict[str, Any]:
        """The changed fields and their cleaned values, for :func:`django_dbq.store.edit`."""
        return {
            name: self.cleaned_data[name]
            for name in self.changed_data
            if name in store.EDITABLE_FIELDS
        }
