"""Runtime settings come from the environment, validated."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mcp_common.settings import RuntimeSettings


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
