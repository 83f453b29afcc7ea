"""System checks (fileshare/checks.py): each misconfiguration gets its id and says what to do."""

from __future__ import annotations

import pytest
from django.core.checks import Error
from django.test import override_settings

from fileshare import checks


def ids(errors: list[Error]) -> list[str]:
    return [str(error.id) for error in errors]


def test_a_missing_storage_alias_is_fileshare_e001() -> None:
    with override_settings(STORAGES={"default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}}):
        errors = checks.check_storage_alias()
    assert ids(errors) == ["fileshare.E001"]
    assert "'fileshare'" in errors[0].msg and "FILESHARE_STORAGE_ALIAS" in str(errors[0].hint)


def test_the_configured_storage_alias_passes() -> None:
    assert checks.check_storage_alias() == []


@pytest.mark.parametrize("name", ["FILESHARE_PING_TIMEOUT", "FILESHARE_IDENTIFY_TIMEOUT", "FILESHARE_MAX_FRAME_BYTES"])
def test_a_limit_that_is_not_positive_is_fileshare_e002(name: str) -> None:
    with override_settings(**{name: 0}):
        errors = checks.check_limits()
    assert ids(errors) == ["fileshare.E002"]
    assert errors[0].msg.startswith(f"{name} must be positive, not 0")


def test_the_default_limits_pass() -> None:
    assert checks.check_limits() == []


def test_no_channel_layer_is_fileshare_e003_with_the_setting_to_add() -> None:
    with override_settings(CHANNEL_LAYERS={}):
        errors = checks.check_channel_layer()
    assert ids(errors) == ["fileshare.E003"]
    assert "channels.layers.InMemoryChannelLayer" in str(errors[0].hint)


def test_a_configured_channel_layer_passes() -> None:
    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}):
        assert checks.check_channel_layer() == []


@pytest.mark.parametrize("variant", ["behind_validator", "nested_behind_validator"])
def test_ws_behind_an_origin_validator_is_fileshare_e004(variant: str) -> None:
    with override_settings(ASGI_APPLICATION=f"tests.support.asgi_variants.{variant}"):
        errors = checks.check_ws_without_origin_validator()
    assert ids(errors) == ["fileshare.E004"]
    assert "Origin" in errors[0].msg and "websocket_urlpatterns" in str(errors[0].hint)


@pytest.mark.parametrize(
    "application",
    [
        "tests.support.asgi_variants.validator_allowing_any",
        "tests.support.asgi_variants.concierge_outside_validator",
        "concierge_site.asgi.application",
    ],
)
def test_ws_reachable_without_an_origin_passes(application: str) -> None:
    with override_settings(ASGI_APPLICATION=application):
        assert checks.check_ws_without_origin_validator() == []
