"""Runtime settings come from the environment, validated."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mcp_common.settings import (
    AuthSettings,
    RuntimeSettings,
    ServiceEnvironmentError,
    apply_service_environment,
)


def test_defaults(monkeypatch):
    for name in ("PORT", "MCP_HOST", "LOG_LEVEL", "AWS_LAMBDA_FUNCTION_NAME"):
        monkeypatch.delenv(name, raising=False)
    settings = RuntimeSettings()
    assert settings.port == 8080
    assert settings.log_level == "INFO"
    assert settings.bind_host() == "127.0.0.1"


def test_lambda_binds_all_interfaces(monkeypatch):
    monkeypatch.delenv("MCP_HOST", raising=False)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "MathFunction")
    assert RuntimeSettings().bind_host() == "0.0.0.0"


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("MCP_HOST", "::1")
    settings = RuntimeSettings()
    assert (settings.port, settings.log_level, settings.bind_host()) == (9000, "DEBUG", "::1")


@pytest.mark.parametrize(
    ("name", "value"), [("PORT", "http"), ("PORT", "70000"), ("LOG_LEVEL", "loud")]
)
def test_invalid_values_are_refused(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        RuntimeSettings()


class TestServiceEnvironment:
    """MCP_SERVICE_ENVIRONMENT: a service's own variables, from its own stack."""

    def test_exports_each_variable(self):
        environ = {"MCP_SERVICE_ENVIRONMENT": '{"MEMORY_TABLE_NAME": "t-1", "WEATHER_RETRIES": 3}'}
        assert apply_service_environment(environ) == ["MEMORY_TABLE_NAME", "WEATHER_RETRIES"]
        assert environ["MEMORY_TABLE_NAME"] == "t-1"
        assert environ["WEATHER_RETRIES"] == "3"

    @pytest.mark.parametrize("raw", ["", "  ", "{}"])
    def test_empty_exports_nothing(self, raw):
        assert apply_service_environment({"MCP_SERVICE_ENVIRONMENT": raw}) == []

    @pytest.mark.parametrize(
        ("raw", "says"),
        [
            ("{not json", "not valid JSON"),
            ('["A"]', "must be a JSON object"),
            ('{"lower": "x"}', "not an upper-case variable name"),
            ('{"AWS_REGION": "x"}', "AWS_REGION is reserved"),
            ('{"PYTHONPATH": "/tmp"}', "PYTHONPATH is reserved"),
            ('{"LOG_LEVEL": "DEBUG"}', "LOG_LEVEL is already set"),
            ('{"TABLE": {"nested": 1}}', "TABLE must be a string"),
        ],
    )
    def test_refuses_what_the_template_never_writes(self, raw, says):
        environ = {"MCP_SERVICE_ENVIRONMENT": raw, "LOG_LEVEL": "INFO"}
        with pytest.raises(ServiceEnvironmentError, match=says) as refused:
            apply_service_environment(environ)
        assert "DEBUG" not in str(refused.value)  # names, never values
        assert environ["LOG_LEVEL"] == "INFO"


@pytest.mark.parametrize(
    ("service", "scopes", "groups", "granted"),
    [
        ("math", {"R/math"}, set(), True),  # an issuer's per-service scope
        ("math", {"R/all"}, set(), True),  # the machine client's
        ("math", {"R/services"}, {"math"}, True),  # a person in the service's group
        ("math", {"R/services"}, {"all"}, True),  # a person in the fleet-wide group
        ("math", {"R/services"}, {"weather"}, False),
        ("math", {"R/weather"}, {"math"}, False),  # a group needs R/services
        ("services", {"R/services"}, set(), False),  # not a per-service scope for "services"
        ("math", {"X/all"}, set(), False),  # another resource server's
    ],
)
def test_who_reaches_a_service_with_a_resource_server(service, scopes, groups, granted):
    settings = AuthSettings(MCP_JWT_RESOURCE_SERVER="R")
    assert settings.grants(service, frozenset(scopes), frozenset(groups)) is granted


def test_the_front_doors_settings_refuse_what_it_could_not_reach(monkeypatch):
    """A stack name that no function name could hold, or an upstream that is not a URL, stops
    the front door at start-up, not at its first call."""
    from mcp_common.settings import FrontDoorSettings

    for name in ("MCP_FRONTDOOR_STACK", "MCP_FRONTDOOR_UPSTREAM", "MCP_FRONTDOOR_CATALOG"):
        monkeypatch.delenv(name, raising=False)
    door = FrontDoorSettings()
    assert (door.stack, door.upstream, door.catalog) == (
        None,
        "http://127.0.0.1:8080",
        "catalog.json",
    )
    for name, value in (
        ("MCP_FRONTDOOR_STACK", "mcp-fleet:serving"),
        ("MCP_FRONTDOOR_UPSTREAM", "127.0.0.1:8080"),
        ("MCP_FRONTDOOR_CONNECT_TIMEOUT_SECONDS", "0"),
    ):
        monkeypatch.setenv(name, value)
        with pytest.raises(ValidationError, match=name):
            FrontDoorSettings()
        monkeypatch.delenv(name)
