"""Where the weather service fetches from, and how long it waits and remembers."""

from __future__ import annotations

from functools import cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WeatherSettings(BaseSettings):
    """Open-Meteo endpoints (forecast, geocoding, historical archive), timeouts, retries and cache lifetimes (WEATHER_* variables)."""

    model_config = SettingsConfigDict(env_prefix="WEATHER_", extra="ignore")

    forecast_url: str = "https://api.open-meteo.com/v1/forecast"
    geocoding_url: str = "https://geocoding-api.open-meteo.com/v1/search"
    archive_url: str = "https://archive-api.open-meteo.com/v1/archive"
    connect_timeout_seconds: float = Field(default=2.0, gt=0)
    read_timeout_seconds: float = Field(default=4.0, gt=0)
    deadline_seconds: float = Field(default=8.0, gt=0, le=25)
    retries: int = Field(default=2, ge=0, le=5)
    geocode_cache_seconds: float = Field(default=86_400, ge=0)
    forecast_cache_seconds: float = Field(default=600, ge=0)
    archive_cache_seconds: float = Field(default=86_400, ge=0)  # past years do not change
    cache_max_entries: int = Field(default=512, ge=1)


@cache
def get_settings() -> WeatherSettings:
    """Read once per process: no per-request environment parsing."""
    return WeatherSettings()
