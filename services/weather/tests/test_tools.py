"""The weather tools through fastmcp's in-memory Client, against recorded Open-Meteo responses."""

from __future__ import annotations

import datetime

import pytest


async def ok(client, tool: str, **arguments):
    result = await client.call_tool(tool, arguments, raise_on_error=False)
    assert not result.is_error, result.content[0].text
    return result


async def failure(client, tool: str, **arguments) -> str:
    result = await client.call_tool(tool, arguments, raise_on_error=False)
    assert result.is_error, result
    return result.content[0].text


async def test_tools_are_published_read_only_and_open_world(client):
    tools = {tool.name: tool for tool in await client.list_tools()}
    assert {"geocode", "get_current_weather", "get_forecast"} <= set(tools)  # what weather ships
    for tool in tools.values():  # every discovered tool
        assert tool.annotations.read_only_hint is True
        assert tool.annotations.open_world_hint is True
        assert tool.output_schema is not None


async def test_geocode_returns_places(client):
    result = await ok(client, "geocode", name="Berlin")
    places = result.structured_content["places"]
    assert [(p["name"], p["country_code"]) for p in places] == [("Berlin", "DE"), ("Berlin", "US")]
    first = places[0]
    assert first["latitude"] == 52.52437
    assert first["timezone"] == "Europe/Berlin"
    assert first["population"] == 3426354
    assert first["admin1"] == "Land Berlin"
    assert "Berlin, Land Berlin, Germany" in result.content[0].text


async def test_geocode_non_latin_names(client, transport):
    result = await ok(client, "geocode", name="東京", language="ja")
    [place] = result.structured_content["places"]
    assert (place["name"], place["country"], place["admin1"]) == ("東京", "日本", "東京都")


async def test_geocode_nothing_found_is_an_empty_answer(client):
    result = await ok(client, "geocode", name="Qqqqzzz")
    assert result.structured_content["places"] == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"name": "  "}, "name is empty"),
        ({"name": "Berlin", "count": 0}, "count must be between 1 and 20"),
        ({"name": "Berlin", "count": 50}, "count must be between 1 and 20"),
        ({"name": "Berlin", "language": "english!"}, "ISO 639-1"),
    ],
)
async def test_geocode_bad_arguments(client, arguments, message):
    assert message in await failure(client, "geocode", **arguments)


async def test_current_weather_by_name(client):
    result = await ok(client, "get_current_weather", location="Berlin")
    data = result.structured_content
    assert data["location"]["name"] == "Berlin, Land Berlin, Germany"
    assert data["location"]["resolved_from"] == "place name"
    assert data["local_time"] == "2026-11-21T14:15"
    assert data["timezone"] == "Europe/Berlin"
    assert (data["temperature"], data["apparent_temperature"]) == (6.4, 2.9)
    assert (data["relative_humidity"], data["precipitation"], data["cloud_cover"]) == (81, 0.2, 100)
    assert (data["wind_speed"], data["wind_direction"]) == (14.8, 247)
    assert data["description"] == "slight rain"
    assert data["units"]["temperature"] == "°C"
    text = result.content[0].text
    assert text.startswith("Berlin, Land Berlin, Germany at 2026-11-21T14:15")
    assert "slight rain" in text


async def test_current_weather_imperial(client):
    data = (
        await ok(client, "get_current_weather", location="Berlin", units="imperial")
    ).structured_content
    assert data["temperature"] == 43.5
    assert data["units"]["temperature"] == "°F"


async def test_current_weather_by_coordinates(client, transport):
    data = (await ok(client, "get_current_weather", location=" 52.52 , 13.41 ")).structured_content
    assert data["location"] == {
        "name": "52.52,13.41",
        "latitude": 52.52,
        "longitude": 13.41,
        "resolved_from": "coordinates",
        "place": None,
    }
    assert transport.calls["/v1/search"] == 0


async def test_country_qualifier_picks_the_match(client):
    data = (await ok(client, "get_current_weather", location="Berlin, US")).structured_content
    assert data["location"]["place"]["admin1"] == "New Hampshire"


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("95,10", "latitude must be between -90 and 90"),
        ("10,-181", "longitude must be between -180 and 180"),
        ("", "location is empty"),
        ("x" * 150, "too long"),
    ],
)
async def test_invalid_locations(client, location, message):
    assert message in await failure(client, "get_current_weather", location=location)


async def test_unknown_place_suggests_close_matches(client):
    message = await failure(client, "get_current_weather", location="Berlinn")
    assert "no place named 'Berlinn' was found" in message
    assert "did you mean: Berlin, Land Berlin, Germany" in message


async def test_unknown_place_without_suggestions(client):
    message = await failure(client, "get_forecast", location="Qqqqzzz")
    assert "no place named 'Qqqqzzz' was found" in message
    assert "check the spelling" in message


async def test_qualifier_that_matches_nothing_is_unknown(client):
    assert "no place named 'Berlin, Japan'" in await failure(
        client, "get_current_weather", location="Berlin, Japan"
    )


async def test_forecast(client):
    result = await ok(client, "get_forecast", location="Berlin", days=3)
    data = result.structured_content
    assert [day["date"] for day in data["days"]] == ["2026-11-21", "2026-11-22", "2026-11-23"]
    first, _, last = data["days"]
    assert first == {
        "date": "2026-11-21",
        "description": "slight rain",
        "weather_code": 61,
        "temperature_max": 7.1,
        "temperature_min": 3.0,
        "precipitation_sum": 2.4,
        "precipitation_probability_max": 80,
        "wind_speed_max": 22.3,
    }
    assert last["precipitation_probability_max"] is None
    assert last["description"] == "slight snowfall"
    assert "(n/a chance)" in result.content[0].text


async def test_forecast_one_day(client):
    data = (await ok(client, "get_forecast", location="52.5,13.4", days=1)).structured_content
    assert len(data["days"]) == 1


@pytest.mark.parametrize("days", [0, 17, -3])
async def test_forecast_days_out_of_range(client, days):
    assert f"days must be between 1 and 16 (got {days})" in await failure(
        client, "get_forecast", location="Berlin", days=days
    )


async def test_warm_calls_are_served_from_the_cache(client, transport):
    await ok(client, "get_current_weather", location="Berlin")
    await ok(client, "get_current_weather", location="Berlin")
    await ok(client, "get_forecast", location="Berlin")
    assert transport.calls["/v1/search"] == 1
    assert transport.calls["/v1/forecast"] == 2  # current and daily are different requests


async def test_climate_history_summarises_each_year_and_the_trend(
    client, transport, archive_warming
):
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    result = await client.call_tool(
        "get_climate_history", {"location": "Berlin", "years": 5}, progress_handler=on_progress
    )
    history = result.structured_content
    years = [year["year"] for year in history["years"]]
    assert years == list(range(years[0], years[0] + 5))
    assert years[-1] < datetime.date.today().year
    assert transport.calls["/v1/archive"] == 5  # one request per year
    for year in history["years"]:
        assert year["mean_temperature_max"] - year["mean_temperature_min"] == pytest.approx(8)
        assert year["precipitation_total"] in (365, 366)
    assert history["trend_per_decade"] == pytest.approx(archive_warming * 10, abs=1e-3)
    assert history["units"] == {"temperature": "°C", "precipitation": "mm"}
    # Progress: the start, then one line per year as it is known, in order.
    assert [done for done, _, _ in progress] == [0, 1, 2, 3, 4, 5]
    assert {total for _, total, _ in progress} == {5}
    assert [message.split(":")[0] for _, _, message in progress[1:]] == [str(y) for y in years]


@pytest.mark.parametrize("years", [0, 81])
async def test_climate_history_refuses_a_span_outside_the_archive(client, years):
    text = await failure(client, "get_climate_history", location="Berlin", years=years)
    assert f"years must be between 1 and 80 (got {years})" in text
