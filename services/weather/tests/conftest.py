"""A stand-in for Open-Meteo: recorded responses in the provider's real format.

The same routing serves two edges: an httpx transport (unit tests, no sockets)
and a Starlette app on loopback that can also fail on demand (integration tests).

The service and fastmcp are imported inside the fixtures: pytest loads every conftest in
the xdist controller too, which runs no test.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import math
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import httpx2 as httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fleet.testing import serve

if TYPE_CHECKING:
    from fastmcp import Client

DATA = Path(__file__).parent / "data"


def recorded(name: str) -> dict:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def answer(path: str, params: Mapping[str, str]) -> tuple[int, bytes]:
    """The recorded response for a request, as Open-Meteo would answer it."""
    if path.endswith("/search"):
        name = params.get("name", "")
        if name == "Berlin":
            body = recorded("geocode_berlin.json")
        elif name == "東京":
            body = recorded("geocode_tokyo_ja.json")
        elif len(name) < len("Berlin") and "Berlin".startswith(name):
            body = recorded("geocode_berl.json")
        else:
            body = recorded("geocode_empty.json")
        return 200, json.dumps(body).encode()
    if path.endswith("/forecast"):
        if int(params.get("forecast_days", 1)) > 16:
            return 400, json.dumps(recorded("forecast_error_400.json")).encode()
        if "current" in params:
            imperial = params.get("temperature_unit") == "fahrenheit"
            body = recorded(
                "forecast_current_imperial.json" if imperial else "forecast_current.json"
            )
        else:
            body = recorded("forecast_daily.json")
            days = int(params.get("forecast_days", 7))
            body["daily"] = {key: values[:days] for key, values in body["daily"].items()}
        return 200, json.dumps(body).encode()
    if path.endswith("/archive"):
        return 200, json.dumps(archive_year(params)).encode()
    return 404, b'{"error": true, "reason": "Not Found"}'


WARMING_PER_YEAR = 0.05
"""The stand-in archive's daily highs rise this much a year (°C): the trend a test expects."""


def archive_year(params: Mapping[str, str]) -> dict:
    """A year of daily history in the archive API's format: a seasonal cycle around a mean
    high of 15 °C in 2000 that rises WARMING_PER_YEAR a year, lows 8 °C below, 1 mm a day."""
    start = datetime.date.fromisoformat(params["start_date"])
    end = datetime.date.fromisoformat(params["end_date"])
    dates = [start + datetime.timedelta(days=n) for n in range((end - start).days + 1)]
    base = 15 + WARMING_PER_YEAR * (start.year - 2000)
    highs = [
        round(base + 10 * math.sin(2 * math.pi * n / len(dates)), 3) for n in range(len(dates))
    ]
    return {
        "latitude": float(params["latitude"]),
        "longitude": float(params["longitude"]),
        "timezone": "Europe/Berlin",
        "daily_units": {
            "time": "iso8601",
            "temperature_2m_max": "°C",
            "temperature_2m_min": "°C",
            "precipitation_sum": "mm",
        },
        "daily": {
            "time": [day.isoformat() for day in dates],
            "temperature_2m_max": highs,
            "temperature_2m_min": [round(high - 8, 3) for high in highs],
            "precipitation_sum": [1.0] * len(dates),
        },
    }


@pytest.fixture
def archive_warming() -> float:
    """How fast the stand-in archive's daily highs rise (°C a year)."""
    return WARMING_PER_YEAR


class RecordedTransport(httpx.AsyncBaseTransport):
    """Serves recorded responses at the transport level and counts requests per path."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls[request.url.path] += 1
        status, body = answer(request.url.path, dict(request.url.params))
        return httpx.Response(status, content=body, headers={"content-type": "application/json"})


@pytest.fixture
def transport() -> Iterator[RecordedTransport]:
    """Point the weather service's process-wide client at recorded responses."""
    from weather_service.client import OpenMeteoClient, set_client
    from weather_service.settings import WeatherSettings

    recorded_transport = RecordedTransport()
    set_client(OpenMeteoClient(WeatherSettings(), transport=recorded_transport))
    yield recorded_transport
    set_client(None)


@pytest.fixture
async def client(transport: RecordedTransport) -> AsyncIterator[Client]:
    from fastmcp import Client

    from mcp_common.app import build_server
    from weather_service import service

    async with Client(build_server(service)) as connected:
        yield connected


class FakeProvider:
    """Open-Meteo on loopback; `mode` makes it answer normally, with 500s, slowly or with garbage."""

    def __init__(self) -> None:
        self.calls = 0
        self.archive_calls = 0
        self.archive_delay = 0.0
        """Seconds each archive (history) request takes: a slow upstream, made shorter."""
        self._not_slow = threading.Event()
        self.mode = "ok"

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        self._mode = mode
        if mode == "slow":
            self._not_slow.clear()
        else:  # a request still hanging from the slow mode ends, so the server can stop
            self._not_slow.set()

    async def handle(self, request: Request) -> Response:
        self.calls += 1
        if self.mode == "500":
            return Response("upstream exploded", status_code=500)
        if self.mode == "slow":
            await asyncio.to_thread(self._not_slow.wait, 60)
        if self.mode == "garbage":
            return Response("<html>Gateway maintenance</html>", media_type="text/html")
        if request.url.path.endswith("/archive"):
            self.archive_calls += 1
            await asyncio.sleep(self.archive_delay)
        status, body = answer(request.url.path, dict(request.query_params))
        return Response(body, status_code=status, media_type="application/json")

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/{endpoint}", self.handle)])


@pytest.fixture(scope="module")
def fake_provider() -> Iterator[tuple[FakeProvider, str]]:
    provider = FakeProvider()
    with serve(provider.app()) as base:
        yield provider, base
