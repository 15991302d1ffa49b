"""The weather service as Lambda runs it (run.sh), against a stand-in Open-Meteo on loopback."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastmcp import Client

from fleet.testing import dev_env, run_script

pytestmark = pytest.mark.slow  # scheduled first: see pytest_collection_modifyitems in conftest.py

RUN_SH = Path(__file__).resolve().parents[1] / "run.sh"
DEADLINE = 2.5


@pytest.fixture(scope="module")
def weather_url(fake_provider) -> Iterator[str]:
    _, provider_base = fake_provider
    env = {
        **dev_env(),
        "WEATHER_FORECAST_URL": f"{provider_base}/v1/forecast",
        "WEATHER_GEOCODING_URL": f"{provider_base}/v1/search",
        # Every call reaches the provider, so switching its failure mode takes effect at once.
        "WEATHER_GEOCODE_CACHE_SECONDS": "0",
        "WEATHER_FORECAST_CACHE_SECONDS": "0",
        # A shorter deadline than the default 8 s: the bound it proves is the same.
        "WEATHER_DEADLINE_SECONDS": str(DEADLINE),
    }
    with run_script(RUN_SH, "/weather/health", env=env) as (base, _):
        yield f"{base}/weather/mcp"


@pytest.fixture
def provider(fake_provider):
    provider, _ = fake_provider
    provider.mode = "ok"
    yield provider
    provider.mode = "ok"


async def test_each_tool_answers_with_the_providers_values(weather_url, provider):
    async with Client(weather_url) as client:
        places = await client.call_tool("geocode", {"name": "東京", "language": "ja"})
        assert places.structured_content["places"][0]["name"] == "東京"
        current = await client.call_tool("get_current_weather", {"location": "Berlin"})
        assert current.structured_content["temperature"] == 6.4
        assert current.structured_content["location"]["name"] == "Berlin, Land Berlin, Germany"
        forecast = await client.call_tool("get_forecast", {"location": "Berlin", "days": 2})
        assert [day["temperature_max"] for day in forecast.structured_content["days"]] == [7.1, 5.2]


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("500", "answered HTTP 500"),
        ("garbage", "returned something unreadable"),
        ("slow", "did not answer in time"),
    ],
)
async def test_each_failure_mode_is_a_tool_error_within_the_deadline(
    weather_url, provider, mode, message
):
    provider.mode = mode
    async with Client(weather_url) as client:
        calls = [
            ("get_current_weather", {"location": "Berlin"}),
            ("get_forecast", {"location": "52.5,13.4"}),
            ("geocode", {"name": "Berlin"}),
        ]
        # A hanging provider costs a full deadline per call: one call shows it.
        for tool, arguments in calls[:1] if mode == "slow" else calls:
            started = time.monotonic()
            result = await client.call_tool(tool, arguments, raise_on_error=False)
            elapsed = time.monotonic() - started
            assert result.is_error, result
            text = result.content[0].text
            assert message in text
            assert "Traceback" not in text
            assert elapsed < DEADLINE + 1, f"{tool} took {elapsed:.1f}s in mode {mode}"
            # Where it gave up, it says how long it really took, not the configured deadline.
            if "gave up" in text:
                reported = float(re.search(r"in (\d+\.\d) s", text).group(1))
                # Never more than the client waited; the rest is HTTP and scheduling.
                assert elapsed - 1.5 <= reported <= elapsed + 0.05, (text, elapsed)
