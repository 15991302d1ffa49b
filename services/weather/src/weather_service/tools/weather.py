"""Current conditions and daily forecasts for a place name or coordinates."""

from __future__ import annotations

from typing import Annotated

from fastmcp.exceptions import ToolError
from fastmcp.tools import ToolResult, tool
from pydantic import Field

from weather_service.client import Deadline, get_client
from weather_service.location import resolve
from weather_service.models import CurrentWeather, Forecast, Units
from weather_service.openmeteo import fetch_current, fetch_daily
from weather_service.settings import get_settings
from weather_service.tools.places import READ_ONLY

MAX_DAYS = 16

Location = Annotated[
    str,
    Field(
        description=(
            "A place name ('Paris', 'Paris, France', 'Springfield, Illinois') or 'lat,lon' in "
            "decimal degrees ('48.85,2.35'). For names the best match is used and named in the answer."
        )
    ),
]
UnitsArg = Annotated[
    Units, Field(description="'metric' (°C, km/h, mm) or 'imperial' (°F, mph, inch)")
]


@tool(
    annotations={"title": "Current weather", **READ_ONLY},
    output_schema=CurrentWeather.model_json_schema(),
)
async def get_current_weather(location: Location, units: UnitsArg = "metric") -> ToolResult:
    """Current weather at a place: temperature, feels-like, humidity, precipitation, wind, clouds and conditions."""
    client, deadline = get_client(), Deadline(get_settings().deadline_seconds)
    place = await resolve(client, location, "en", deadline)
    current = CurrentWeather(
        location=place,
        **await fetch_current(client, place.latitude, place.longitude, units, deadline),
    )
    u = current.units
    text = (
        f"{place.name} at {current.local_time} ({current.timezone}): {current.description}, "
        f"{current.temperature:g} {u['temperature']} (feels like {current.apparent_temperature:g} "
        f"{u['temperature']}), humidity {current.relative_humidity:g}%, precipitation "
        f"{current.precipitation:g} {u['precipitation']}, wind {current.wind_speed:g} {u['wind_speed']} "
        f"from {current.wind_direction:g}°, cloud cover {current.cloud_cover:g}%."
    )
    return ToolResult(content=text, structured_content=current.model_dump(mode="json"))


def _value(value: float | None, unit: str) -> str:
    return "n/a" if value is None else f"{value:g} {unit}".rstrip()


@tool(
    annotations={"title": "Daily forecast", **READ_ONLY},
    output_schema=Forecast.model_json_schema(),
)
async def get_forecast(
    location: Location,
    days: Annotated[
        int,
        Field(
            description=f"Number of days from today, 1 to {MAX_DAYS}",
            json_schema_extra={"minimum": 1, "maximum": MAX_DAYS},
        ),
    ] = 3,
    units: UnitsArg = "metric",
) -> ToolResult:
    """Daily forecast for a place: conditions, max/min temperature, precipitation sum and probability, max wind."""
    if not 1 <= days <= MAX_DAYS:
        raise ToolError(f"days must be between 1 and {MAX_DAYS} (got {days})")
    client, deadline = get_client(), Deadline(get_settings().deadline_seconds)
    place = await resolve(client, location, "en", deadline)
    timezone, units_out, daily = await fetch_daily(
        client, place.latitude, place.longitude, days, units, deadline
    )
    forecast = Forecast(location=place, timezone=timezone, units=units_out, days=daily)
    t, p, w = units_out["temperature"], units_out["precipitation"], units_out["wind_speed"]
    lines = [f"{len(daily)}-day forecast for {place.name} ({timezone}):"]
    for day in daily:
        probability = (
            "n/a"
            if day.precipitation_probability_max is None
            else f"{day.precipitation_probability_max:g}%"
        )
        lines.append(
            f"- {day.date}: {day.description}, {_value(day.temperature_min, t)} to "
            f"{_value(day.temperature_max, t)}, precipitation {_value(day.precipitation_sum, p)} "
            f"({probability} chance), wind up to {_value(day.wind_speed_max, w)}"
        )
    return ToolResult(content="\n".join(lines), structured_content=forecast.model_dump(mode="json"))
