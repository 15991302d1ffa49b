"""Against the real Open-Meteo API. Opt in with `uv run pytest -m live` (needs the internet)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastmcp import Client

from mcp_common.app import build_server
from weather_service import service
from weather_service.client import set_client

pytestmark = pytest.mark.live


@pytest.fixture
async def live_client() -> AsyncIterator[Client]:
    set_client(None)  # the real provider, default URLs
    async with Client(build_server(service)) as client:
        yield client
    set_client(None)


async def test_geocode_tokyo_in_japanese(live_client):
    result = await live_client.call_tool("geocode", {"name": "東京", "language": "ja", "count": 1})
    assert result.structured_content["places"][0]["country_code"] == "JP"


async def test_current_and_forecast(live_client):
    current = await live_client.call_tool("get_current_weather", {"location": "Berlin"})
    assert current.structured_content["timezone"] == "Europe/Berlin"
    forecast = await live_client.call_tool("get_forecast", {"location": "48.85,2.35", "days": 5})
    assert len(forecast.structured_content["days"]) == 5
