"""Environment-driven configuration: one pydantic-settings object per concern.

Every variable here is documented in the README's configuration table.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def running_in_lambda() -> bool:
    """True inside an AWS Lambda execution environment."""
    return "AWS_LAMBDA_FUNCTION_NAME" in os.environ


class RuntimeSettings(BaseSettings):
    """How the process serves: port, bind address, log level."""

    model_config = SettingsConfigDict(extra="ignore")

    port: int = Field(default=8080, ge=1, le=65535, validation_alias="PORT")
    host: str | None = Field(default=None, validation_alias="MCP_HOST")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", validation_alias="LOG_LEVEL"
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    def bind_host(self) -> str:
        """0.0.0.0 inside Lambda (the Web Adapter connects locally), loopback elsewhere."""
        if self.host:
            return self.host
        return "0.0.0.0" if running_in_lambda() else "127.0.0.1"  # noqa: S104
