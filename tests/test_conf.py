"""django_dbq.conf: a setting changed by a test, however it is changed, is what is read."""

from __future__ import annotations

from django.test import override_settings

from django_dbq import conf


def test_a_missing_setting_gives_its_default():
    assert conf.claim_batch() == conf.DEFAULTS["DBQ_CLAIM_BATCH"]


def test_a_setting_changed_by_override_settings_is_read_again_and_restored():
    assert conf.max_errors_kept() == conf.DEFAULTS["DBQ_MAX_ERRORS_KEPT"]
    with override_settings(DBQ_MAX_ERRORS_KEPT=3):
        assert conf.max_errors_kept() == 3
        with override_settings(DBQ_MAX_ERRORS_KEPT=4):
            assert conf.max_errors_kept() == 4
        assert conf.max_errors_kept() == 3
    assert conf.max_errors_kept() == conf.DEFAULTS["DBQ_MAX_ERRORS_KEPT"]


def test_the_pytest_django_settings_fixture_is_seen(settings):
    conf.lease_seconds()
    settings.DBQ_LEASE_SECONDS = 12
    assert conf.lease_seconds() == 12.0


def test_a_setting_assigned_directly_is_seen(monkeypatch):
    from django.conf import settings

    conf.claim_batch()
    monkeypatch.setattr(settings, "DBQ_CLAIM_BATCH", 5, raising=False)  # no setting_changed
    assert conf.claim_batch() == 5
