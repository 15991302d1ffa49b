"""Open-Meteo's geocoding, forecast and historical (archive) APIs: request parameters in, pydantic models out.

Any response that does not have the documented shape is reported as unreadable
(ProviderError), never as a traceback.
"""

from __future__ import annotations

from typing import Any, cast

from pydantic import ValidationError

from weather_service.client import Deadline, OpenMeteoClient, ProviderError
from weather_service.models import ClimateYear, DailyForecast, Place, Units
from weather_service.wmo import describe

CURRENT_VARIABLES = (
    "temperature_2m",
    "apparent_temperature",
    "relative_humidity_2m",
    "precipitation",
    "weather_code",
    "cloud_cover",
    "wind_speed_10m",
    "wind_direction_10m",
)
DAILY_VARIABLES = (
    "weather_code",
    "temperature_2m_max",
    "temperature_2m_min",
    "precipitation_sum",
    "precipitation_probability_max",
    "wind_speed_10m_max",
)
IMPERIAL = {
    "temperature_unit": "fahrenheit",
    "wind_speed_unit": "mph",
    "precipitation_unit": "inch",
}


def _unreadable(detail: str) -> ProviderError:
    return ProviderError(f"the weather provider returned something unreadable ({detail})")


async def search_places(
    client: OpenMeteoClient, name: str, count: int, language: str, deadline: Deadline
) -> list[Place]:
    params = {"name": name, "count": count, "language": language, "format": "json"}
    data = await client.get_json(
        client.settings.geocoding_url,
        params,
        ttl=client.settings.geocode_cache_seconds,
        deadline=deadline,
    )
    results = data.get("results", [])  # absent when nothing matches
    if not isinstance(results, list):
        raise _unreadable("geocoding 'results' is not a list")
    try:
        return [Place.model_validate(item) for item in results]
    except ValidationError as exc:
        raise _unreadable(f"geocoding result: {exc.errors()[0]['msg']}") from None


def _forecast_params(
    latitude: float, longitude: float, units: Units
) -> dict[str, str | int | float]:
    params: dict[str, str | int | float] = {
        "latitude": round(latitude, 4),
        "longitude": round(longitude, 4),
        "timezone": "auto",
    }
    if units == "imperial":
        params.update(IMPERIAL)
    return params


async def _block(
    client: OpenMeteoClient,
    url: str,
    ttl: float,
    params: dict[str, str | int | float],
    block: str,
    deadline: Deadline,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(whole answer, `block`, `block`_units) of a forecast or archive request, or
    ProviderError."""
    data = await client.get_json(url, params, ttl=ttl, deadline=deadline)
    values, units = data.get(block), data.get(f"{block}_units")
    if not isinstance(values, dict) or not isinstance(units, dict):
        raise _unreadable(f"no '{block}' block")
    return data, values, units


async def _forecast_block(
    client: OpenMeteoClient, params: dict[str, str | int | float], block: str, deadline: Deadline
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    settings = client.settings
    return await _block(
        client, settings.forecast_url, settings.forecast_cache_seconds, params, block, deadline
    )


def _daily_series(
    daily: dict[str, Any], names: tuple[str, ...]
) -> tuple[list[Any], dict[str, list[Any]]]:
    """(dates, each named daily series), all of one length, or ProviderError."""
    dates = daily.get("time")
    series = {name: daily.get(name) for name in names}
    if not isinstance(dates, list) or any(
        not isinstance(values, list) or len(values) != len(dates) for values in series.values()
    ):
        raise _unreadable("daily series are missing or of unequal length")
    return dates, cast("dict[str, list[Any]]", series)  # each checked to be a list above


async def fetch_current(
    client: OpenMeteoClient, latitude: float, longitude: float, units: Units, deadline: Deadline
) -> dict[str, Any]:
    """Current conditions: the fields of CurrentWeather that come from the provider."""
    params = {
        **_forecast_params(latitude, longitude, units),
        "current": ",".join(CURRENT_VARIABLES),
    }
    data, current, current_units = await _forecast_block(client, params, "current", deadline)
    missing = [name for name in ("time", *CURRENT_VARIABLES) if current.get(name) is None]
    if missing:
        raise _unreadable(f"missing current {', '.join(missing)}")
    try:
        return {
            "local_time": str(current["time"]),
            "timezone": str(data.get("timezone") or "GMT"),
            "description": describe(current["weather_code"]),
            "weather_code": int(current["weather_code"]),
            "temperature": float(current["temperature_2m"]),
            "apparent_temperature": float(current["apparent_temperature"]),
            "relative_humidity": float(current["relative_humidity_2m"]),
            "precipitation": float(current["precipitation"]),
            "wind_speed": float(current["wind_speed_10m"]),
            "wind_direction": float(current["wind_direction_10m"]),
            "cloud_cover": float(current["cloud_cover"]),
            "units": {
                "temperature": str(current_units.get("temperature_2m", "")),
                "relative_humidity": str(current_units.get("relative_humidity_2m", "%")),
                "precipitation": str(current_units.get("precipitation", "")),
                "wind_speed": str(current_units.get("wind_speed_10m", "")),
                "wind_direction": str(current_units.get("wind_direction_10m", "°")),
                "cloud_cover": str(current_units.get("cloud_cover", "%")),
            },
        }
    except (TypeError, ValueError):
        raise _unreadable("a current value is not a number") from None


async def fetch_daily(
    client: OpenMeteoClient,
    latitude: float,
    longitude: float,
    days: int,
    units: Units,
    deadline: Deadline,
) -> tuple[str, dict[str, str], list[DailyForecast]]:
    """(timezone, units, one DailyForecast per day) for `days` days from today."""
    params = {
        **_forecast_params(latitude, longitude, units),
        "daily": ",".join(DAILY_VARIABLES),
        "forecast_days": days,
    }
    data, daily, daily_units = await _forecast_block(client, params, "daily", deadline)
    dates, series = _daily_series(daily, DAILY_VARIABLES)
    try:
        forecast = [
            DailyForecast(
                date=str(date),
                description=describe(series["weather_code"][index]),
                weather_code=series["weather_code"][index],
                temperature_max=series["temperature_2m_max"][index],
                temperature_min=series["temperature_2m_min"][index],
                precipitation_sum=series["precipitation_sum"][index],
                precipitation_probability_max=series["precipitation_probability_max"][index],
                wind_speed_max=series["wind_speed_10m_max"][index],
            )
            for index, date in enumerate(dates)
        ]
    except (ValidationError, TypeError, ValueError):
        raise _unreadable("a daily value is not a number") from None
    units_out = {
        "temperature": str(daily_units.get("temperature_2m_max", "")),
        "precipitation": str(daily_units.get("precipitation_sum", "")),
        "precipitation_probability": str(daily_units.get("precipitation_probability_max", "%")),
        "wind_speed": str(daily_units.get("wind_speed_10m_max", "")),
    }
    return str(data.get("timezone") or "GMT"), units_out, forecast


ARCHIVE_VARIABLES = ("temperature_2m_max", "temperature_2m_min", "precipitation_sum")


async def fetch_year(
    client: OpenMeteoClient,
    latitude: float,
    longitude: float,
    year: int,
    units: Units,
    deadline: Deadline,
) -> tuple[dict[str, str], ClimateYear]:
    """(units, the year's summary) from one archive request for 1 January to 31 December."""
    params = {
        **_forecast_params(latitude, longitude, units),
        "start_date": f"{year}-01-01",
        "end_date": f"{year}-12-31",
        "daily": ",".join(ARCHIVE_VARIABLES),
    }
    settings = client.settings
    _, daily, daily_units = await _block(
        client, settings.archive_url, settings.archive_cache_seconds, params, "daily", deadline
    )
    dates, series = _daily_series(daily, ARCHIVE_VARIABLES)
    highs, lows, rain = (series[name] for name in ARCHIVE_VARIABLES)
    try:
        days = [
            (str(date), float(high), float(low), float(wet or 0))
            for date, high, low, wet in zip(dates, highs, lows, rain, strict=True)
            if high is not None and low is not None
        ]
    except (TypeError, ValueError):
        raise _unreadable("a daily value is not a number") from None
    if not days:
        raise ProviderError(f"the weather provider has no data for {year} at this place")
    hottest = max(days, key=lambda day: day[1])
    coldest = min(days, key=lambda day: day[2])
    summary = ClimateYear(
        year=year,
        mean_temperature_max=round(sum(day[1] for day in days) / len(days), 2),
        mean_temperature_min=round(sum(day[2] for day in days) / len(days), 2),
        precipitation_total=round(sum(day[3] for day in days), 1),
        hottest_day=hottest[0],
        hottest_temperature=hottest[1],
        coldest_day=coldest[0],
        coldest_temperature=coldest[2],
    )
    units_out = {
        "temperature": str(daily_units.get("temperature_2m_max", "")),
        "precipitation": str(daily_units.get("precipitation_sum", "")),
    }
    return units_out, summary
