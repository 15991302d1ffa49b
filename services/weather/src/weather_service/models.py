"""What the weather tools return: structured content, one pydantic model per result."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Units = Literal["metric", "imperial"]


class Place(BaseModel):
    """A geocoded place."""

    name: str
    country: str | None = None
    country_code: str | None = None
    admin1: str | None = Field(
        default=None, description="First-level administrative area (state, region)"
    )
    latitude: float
    longitude: float
    timezone: str | None = None
    population: int | None = None

    def label(self) -> str:
        parts = [self.name, self.admin1, self.country]
        seen: list[str] = []
        for part in parts:
            if part and part not in seen:
                seen.append(part)
        return ", ".join(seen)


class GeocodeResult(BaseModel):
    query: str
    places: list[Place]


class ResolvedLocation(BaseModel):
    """The place a weather answer is about, and how it was resolved."""

    name: str = Field(description="The place name used, or the coordinates as given")
    latitude: float
    longitude: float
    resolved_from: Literal["place name", "coordinates"]
    place: Place | None = Field(default=None, description="The geocoding match, for place names")


class CurrentWeather(BaseModel):
    location: ResolvedLocation
    local_time: str = Field(description="Observation time, local to the place (ISO 8601)")
    timezone: str
    description: str = Field(description="The WMO weather code in words")
    weather_code: int
    temperature: float
    apparent_temperature: float
    relative_humidity: float
    precipitation: float
    wind_speed: float
    wind_direction: float = Field(description="Degrees, meteorological (0 = from north)")
    cloud_cover: float
    units: dict[str, str]


class DailyForecast(BaseModel):
    date: str
    description: str
    weather_code: int | None
    temperature_max: float | None
    temperature_min: float | None
    precipitation_sum: float | None
    precipitation_probability_max: float | None = Field(description="Percent")
    wind_speed_max: float | None


class Forecast(BaseModel):
    location: ResolvedLocation
    timezone: str
    units: dict[str, str]
    days: list[DailyForecast]


class ClimateYear(BaseModel):
    year: int
    mean_temperature_max: float = Field(description="Mean of the daily highs")
    mean_temperature_min: float = Field(description="Mean of the daily lows")
    precipitation_total: float
    hottest_day: str
    hottest_temperature: float
    coldest_day: str
    coldest_temperature: float


class ClimateHistory(BaseModel):
    location: ResolvedLocation
    units: dict[str, str]
    years: list[ClimateYear]
    trend_per_decade: float | None = Field(
        description="Least-squares change of the mean daily high per 10 years (None below 2 years)"
    )
